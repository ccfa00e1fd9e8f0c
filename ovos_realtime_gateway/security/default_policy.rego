# Default access policy of the ovos-realtime gateway.
#
# Input (docs/security.md, "Policy input"): {principal, project, action, resource, request}
#   principal.kind         "project_key" | "client_secret" (ek_) | "sip_trunk" | "talk_page"
#   principal.project_id   the caller's project; principal.key_id: its project key (or the minting key)
#   resource.kind          "session" | "call" | "microphone" | "model"
#   resource.project_id    the project that owns what is touched, or will own what is created
#                          (absent only for what belongs to no project: a model, an unknown id)
#   resource.model, resource.voice   the model and voice of a session or call, when known
#   request.time           unix seconds, request.method, request.path, request.transport
# Output: data.ovos_realtime.decision = {"allow": bool, "reason": string}
#
# A policy built on this one adds refusals with `deny contains "<reason>" if { ... }`: any reason
# in `deny` refuses the request, whatever `permitted` says.
package ovos_realtime

import rego.v1

# A project key manages everything inside its own project.
project_key_actions := {
	"client_secrets.create",
	"sessions.create",
	"sessions.read",
	"transcription_sessions.create",
	"models.list",
	"models.read",
	"realtime.connect",
	"calls.create",
	"calls.manage",
	"microphone.feed",
	"microphone.listen",
}

# An ek_ client secret may only open realtime sessions and calls (a session of the model
# `ovos-microphone` feeds the device microphone), and only until it expires.
client_secret_actions := {"realtime.connect", "calls.create", "microphone.feed"}

# Tenant isolation: what is touched belongs to the caller's project. The device microphone
# (`microphone.feed`, `microphone.listen`) has the project `microphone_project` as its
# resource.project_id, so this keeps every other project's keys and secrets (the talk page's
# among them) out of it. The gateway checks the project again after the policy (a second line).
same_project if input.resource.project_id == input.principal.project_id

same_project if not input.resource.project_id

default permitted := false

permitted if {
	input.principal.kind == "project_key"
	input.action in project_key_actions
}

permitted if {
	input.principal.kind == "client_secret"
	input.action in client_secret_actions
}

# The talk page (when enabled in the settings) may mint client secrets for its own project.
# To keep it to the device's network, add e.g. `startswith(input.request.remote, "192.168.")`.
permitted if {
	input.principal.kind == "talk_page"
	input.action == "talk_page.client_secret"
}

# A SIP trunk (an INVITE from `sip.allowed_sources`) may offer calls to its project.
permitted if {
	input.principal.kind == "sip_trunk"
	input.action == "sip.invite"
}

deny contains "The resource belongs to another project." if not same_project

deny contains "The client secret has expired." if {
	input.principal.kind == "client_secret"
	not input.principal.expires_at > input.request.time
}

default allow := false

allow if {
	permitted
	count(deny) == 0
}

reason := "" if allow

else := "Client secrets (ek_) can only open realtime sessions and calls." if {
	input.principal.kind == "client_secret"
	not input.action in client_secret_actions
}

else := concat(" ", sort(deny)) if count(deny) > 0

else := sprintf("Action '%s' is not permitted for this key.", [input.action])

decision := {"allow": allow, "reason": reason}
