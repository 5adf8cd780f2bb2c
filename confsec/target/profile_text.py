"""A target profile written out (TOML): what `confsec reference serve` hands a user about the
reference it started, so that it is tested exactly like a third-party target, through a file and
environment variables. `confsec.target.profile.load_profile` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping

from confsec.target.model import Target

__all__ = ["profile_text"]


def profile_text(target: Target, env_names: Mapping[str, str]) -> str:
    """A profile describing `target`, with each account's password named by `env_names`.

    Used by `confsec reference serve` so that the reference can be tested exactly like a
    third-party target: through a file and environment variables, not in-process objects.
    """
    q = _toml_str
    c = target.capabilities
    lines = [
        "# written by `confsec reference serve`; passwords are in the environment variables",
        "[target]",
        f"name = {q(target.name)}",
        f"domain = {q(target.domain)}",
        "",
        "[signalling]",
        f"host = {q(target.host)}",
        f"port = {target.port}",
        f"transport = {q(target.transport)}",
        "",
        "[conference]",
        f"factory_uri = {q(target.factory_uri)}",
        "",
        "[tls]",
        f"ca_file = {q(str(target.ca_file))}",
        "",
        "[timeouts]",
        f"connect = {target.timeouts.connect}",
        f"transaction = {target.timeouts.transaction}",
        f"media = {target.timeouts.media}",
        "",
        "[capabilities]",
        f"key_management = {q(c.key_management)}",
        f"mutual_tls = {str(c.mutual_tls).lower()}",
        f"video = {str(c.video).lower()}",
        f"group_keys = {str(c.group_keys).lower()}",
        f"event_package = {str(c.event_package).lower()}",
        f"floor_control = {str(c.floor_control).lower()}",
        f"restricted_membership = {str(c.restricted_membership).lower()}",
        f"media_handling = {q(c.mixing)}",
        f"rekey_batching_window = {c.rekey_batching_window_s}",
        f"rekey_deadline = {c.rekey_deadline_s}",
        *(
            [f"rekey_latency_bound = {c.rekey_latency_bound_s}"]
            if c.rekey_latency_bound_s is not None
            else []
        ),
        *([f"lost_participant_timeout = {lost}"] if (lost := c.lost_participant_timeout_s) else []),
        "creation_modes = [" + ", ".join(q(m) for m in c.creation_modes) + "]",
        "srtp_suites = [" + ", ".join(q(s) for s in c.srtp_suites) + "]",
        "internal_interfaces = ["
        + ", ".join(
            f"{{name = {q(i.name)}, host = {q(i.host)}, port = {i.port}, "
            f"server_name = {q(i.server_name)}}}"
            for i in c.internal_interfaces
        )
        + "]",
    ]
    for name, a in target.accounts.items():
        lines += [
            "",
            f"[accounts.{name}]",
            f"username = {q(a.username)}",
            f"password_env = {q(env_names[name])}",
            f"display_name = {q(a.display_name or name.capitalize())}",
        ]
        if a.client_cert and a.client_key:
            lines += [
                f"client_cert = {q(str(a.client_cert))}",
                f"client_key = {q(str(a.client_key))}",
            ]
        for flaw, (cert, key) in a.flawed_certs.items():
            lines += ["", f"[accounts.{name}.flawed_certs.{flaw}]", f"cert = {q(str(cert))}"]
            lines.append(f"key = {q(str(key))}")
    lines += ["", "[dial_out]", f"reach = {q(target.dial_out_reach)}"]
    for action, spec in target.adapters.items():
        lines += ["", f"[adapters.{action}]"]
        if spec.command is not None:
            lines.append(f"command = {q(spec.command)}")
        else:
            lines.append(f"entry_point = {q(spec.entry_point or '')}")
        lines.append(f"timeout = {spec.timeout}")
    return "\n".join(lines) + "\n"


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
