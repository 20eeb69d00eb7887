# Shared set-up for scripts/demo and scripts/test: sourced, not run.
# Creates .venv on first use, installs the system libraries napari needs (when root and
# missing) and the package with the requested extras. Re-runs are quick: pip is skipped
# while pyproject.toml is unchanged.

XAFSMAP_APT_PACKAGES="xvfb xauth libgl1 libgl1-mesa-dri libglx-mesa0 libegl1 libegl-mesa0
  libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libxcb-xkb1
  libxcb-cursor0 libdbus-1-3 libfontconfig1 fonts-dejavu-core"

xafsmap_system_libraries() {
    command -v dpkg >/dev/null 2>&1 || return 0
    # shellcheck disable=SC2086
    if dpkg -s $XAFSMAP_APT_PACKAGES >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "xafsmap: installing system libraries for napari (apt-get)"
        apt-get update -qq
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            --no-upgrade $XAFSMAP_APT_PACKAGES >/dev/null
    else
        echo "xafsmap: some system libraries for napari are missing; as root run:" >&2
        echo "  apt-get install $(echo $XAFSMAP_APT_PACKAGES)" >&2
    fi
}

# xafsmap_python_env EXTRA: make .venv and install the package with [EXTRA].
xafsmap_python_env() {
    local extra=$1 python=${PYTHON:-python3}
    if [ ! -x .venv/bin/python ]; then
        echo "xafsmap: creating .venv with $($python --version)"
        if ! "$python" -m venv .venv 2>/dev/null; then
            # Debian's own Python ships venv/ensurepip in a separate package
            rm -rf .venv
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                echo "xafsmap: installing python3-venv (apt-get)"
                apt-get update -qq
                version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                    "python${version}-venv" >/dev/null 2>&1 ||
                    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
                "$python" -m venv .venv
            else
                echo "xafsmap: '$python -m venv' failed; as root run: apt-get install python3-venv" >&2
                return 1
            fi
        fi
    fi
    local stamp=".venv/.xafsmap-$extra" want
    want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "xafsmap: installing xafsmap[$extra] into .venv (first run takes a few minutes)"
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e ".[$extra]"
        echo "$want" > "$stamp"
    fi
}
