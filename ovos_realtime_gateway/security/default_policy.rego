# Default access policy of the ovos-realtime gateway.
#
# Input: {principal, project, action, resource, request}
#   principal.kind         "project_key" | "client_secret" | "talk_page" (no key: the browser page)
#   principal.project_id   the caller's project
#   resource.project_id    the project that owns what is touched (absent when creating)
#   request.time           unix seconds, request.method, request.path, request.transport
# Output: data.ovos_realtime.decision = {"allow": bool, "reason": string}
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

# The device microphone (`microphone.feed`, `microphone.listen`) belongs to the device's owner:
# its resource.project_id is the project `microphone_project`, so `same_project` keeps every other
# project's keys and secrets (the talk page's among them) out of it.

default allow := false

same_project if not input.resource.project_id

same_project if input.resource.project_id == input.principal.project_id

allow if {
	input.principal.kind == "project_key"
	input.action in project_key_actions
	same_project
}

allow if {
	input.principal.kind == "client_secret"
	input.action in client_secret_actions
	same_project
	input.principal.expires_at > input.request.time
}

# The talk page (when enabled in the settings) may mint client secrets for its own project.
# To keep it to the device's network, add e.g. `startswith(input.request.remote, "192.168.")`.
allow if {
	input.principal.kind == "talk_page"
	input.action == "talk_page.client_secret"
}

# A SIP trunk (an INVITE from `sip.allowed_sources`) may offer calls to its project.
allow if {
	input.principal.kind == "sip_trunk"
	input.action == "sip.invite"
}

reason := "" if allow

else := "Client secrets (ek_) can only open realtime sessions and calls." if {
	input.principal.kind == "client_secret"
	not input.action in client_secret_actions
}

else := "The resource belongs to another project." if not same_project

else := "The client secret has expired." if {
	input.principal.kind == "client_secret"
	input.principal.expires_at <= input.request.time
}

else := sprintf("Action '%s' is not permitted for this key.", [input.action])

decision := {"allow": allow, "reason": reason}
