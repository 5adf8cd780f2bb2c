# Sourced by scripts/run and scripts/test: create (once) and use the project's own virtual
# environment, so that confsec never installs into, or silently borrows from, the machine's
# Python. A venv without system site-packages also proves the declared dependencies: an import
# that pyproject.toml does not declare fails here, not first on a user's machine.
#
#   CONFSEC_VENV   where the environment lives (default: .venv in the checkout)
#   PYTHON         the interpreter that creates it (default: python3; 3.11 or newer)
#
# Usage: confsec_venv EXTRAS   ("" for the runtime, "test" for the project's tests)

confsec_venv() {
    local extras="$1" root venv python spec stamp want
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="${CONFSEC_VENV:-$root/.venv}"
    python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "confsec: $python not found; install Python 3.11 or newer (Debian 12: apt-get install python3 python3-venv)" >&2
        exit 3
    fi
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "confsec: $("$python" --version 2>&1) is too old; confsec needs Python 3.11 or newer (set PYTHON=...)" >&2
        exit 3
    fi
    if [ ! -x "$venv/bin/python" ]; then
        echo "confsec: creating the project environment in $venv" >&2
        if ! "$python" -m venv "$venv"; then
            rm -rf "$venv"
            echo "confsec: '$python -m venv' failed; on Debian or Ubuntu install the venv module: apt-get install python3-venv" >&2
            exit 3
        fi
    fi
    spec="$root"
    [ -n "$extras" ] && spec="$root[$extras]"
    # Reinstall only when the declared dependencies or the extras asked for change.
    want="$(sha256sum <"$root/pyproject.toml" | cut -d' ' -f1) $extras"
    stamp="$venv/.confsec-installed"
    if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
        echo "confsec: installing confsec${extras:+ with its $extras extras} into $venv" >&2
        "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null \
            || true
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" \
            || { echo "confsec: pip could not install confsec${extras:+[$extras]} into $venv (see above)" >&2; exit 4; }
        echo "$want" >>"$stamp"
    fi
    export VIRTUAL_ENV="$venv"
    export PATH="$venv/bin:$PATH"
}
