# Unit tests of the default policy: `ovos-realtime policy test` runs every `test_` rule here.
package ovos_realtime_test

import rego.v1

import data.ovos_realtime

now := 1800000000

key_a := {"kind": "project_key", "project_id": "proj_a", "credential_id": "key_a", "key_id": "key_a"}

secret_a := {
	"kind": "client_secret", "project_id": "proj_a", "credential_id": "cs_a", "key_id": "key_a",
	"session_id": "sess_a", "expires_at": now + 60,
}

session_of(project) := {"kind": "session", "id": "sess_x", "project_id": project, "model": "gpt-realtime"}

microphone_of(owner) := {"kind": "microphone", "id": "device-microphone", "project_id": owner}

# The default policy's decision for one request.
# (Each part of the input is replaced on its own: regopy 1.5.2 crashes on `with input as {...}`
# when the policy's rules depend on one another.)
ask(principal, action, resource) := decision if {
	request := {"time": now, "method": "GET", "path": "/", "transport": "rest"}
	decision := ovos_realtime.decision with input.principal as principal
		with input.project as {"id": object.get(principal, "project_id", null)}
		with input.action as action
		with input.resource as resource
		with input.request as request
}

test_project_key_reads_its_own_projects_session if {
	ask(key_a, "sessions.read", session_of("proj_a")).allow
}

test_project_key_cannot_read_another_projects_session if {
	decision := ask(key_a, "sessions.read", session_of("proj_b"))
	not decision.allow
	decision.reason == "The resource belongs to another project."
}

test_project_key_creates_in_its_own_project_only if {
	ask(key_a, "client_secrets.create", session_of("proj_a")).allow
	not ask(key_a, "client_secrets.create", session_of("proj_b")).allow
}

test_models_belong_to_no_project if {
	ask(key_a, "models.read", {"kind": "model", "id": "gpt-realtime"}).allow
}

test_anonymous_caller_is_denied if {
	not ask({"project_id": "proj_a"}, "sessions.read", session_of("proj_a")).allow
	not ask({}, "models.list", {"kind": "model"}).allow
}

test_unknown_principal_kind_is_denied if {
	not ask({"kind": "root", "project_id": "proj_a"}, "sessions.read", session_of("proj_a")).allow
}

test_client_secret_opens_sessions_of_its_project if {
	ask(secret_a, "realtime.connect", session_of("proj_a")).allow
	ask(secret_a, "calls.create", {"kind": "call", "project_id": "proj_a", "transport": "webrtc"}).allow
	not ask(secret_a, "realtime.connect", session_of("proj_b")).allow
}

test_client_secret_cannot_manage_or_mint if {
	decision := ask(secret_a, "client_secrets.create", session_of("proj_a"))
	not decision.allow
	decision.reason == "Client secrets (ek_) can only open realtime sessions and calls."
	not ask(secret_a, "sessions.read", session_of("proj_a")).allow
	not ask(secret_a, "calls.manage", {"kind": "call", "project_id": "proj_a"}).allow
	not ask(secret_a, "microphone.listen", microphone_of("proj_a")).allow
}

test_expired_client_secret_is_denied if {
	expired := object.union(secret_a, {"expires_at": now - 1})
	decision := ask(expired, "realtime.connect", session_of("proj_a"))
	not decision.allow
	decision.reason == "The client secret has expired."
}

test_microphone_belongs_to_its_owner if {
	ask(key_a, "microphone.listen", microphone_of("proj_a")).allow
	ask(key_a, "microphone.feed", microphone_of("proj_a")).allow
	ask(secret_a, "microphone.feed", microphone_of("proj_a")).allow
	not ask(key_a, "microphone.listen", microphone_of("proj_owner")).allow
	not ask(secret_a, "microphone.feed", microphone_of("proj_owner")).allow
}

test_talk_page_only_mints_for_its_project if {
	page := {"kind": "talk_page", "project_id": "proj_talk", "credential_id": "talk_page"}
	ask(page, "talk_page.client_secret", session_of("proj_talk")).allow
	not ask(page, "realtime.connect", session_of("proj_talk")).allow
	not ask(page, "microphone.feed", microphone_of("proj_owner")).allow
}

test_sip_trunk_offers_calls_to_its_project if {
	trunk := {"kind": "sip_trunk", "project_id": "proj_phones", "credential_id": "sip_trunk"}
	call := {"kind": "call", "id": "rtc_1", "project_id": "proj_phones", "transport": "sip"}
	ask(trunk, "sip.invite", call).allow
	not ask(trunk, "sip.invite", object.union(call, {"project_id": "proj_a"})).allow
	not ask(trunk, "calls.manage", call).allow
}
