#!/usr/bin/env bash
# The sound server the device tests play and record through: installs PortAudio and PulseAudio (Debian, as
# root) and starts one PulseAudio daemon with a null sink and a virtual source on its monitor. Idempotent and
# quick when everything is already there.
#
#   bash tools/pulse.sh           install what is missing, then start (tools/test.sh runs this)
#   bash tools/pulse.sh --start   start only (never installs); what tests/nodes/test_devices.py runs
#
# Clients reach the server at PULSE_SERVER=unix:$MEDIAGRAPH_PULSE_DIR/native (default /tmp/mediagraph-pulse),
# whatever HOME or XDG_RUNTIME_DIR say. Sink: mediagraph_out; source: mediagraph_in (the sink's monitor);
# both are the server's defaults. PortAudio (ALSA) reaches it through the ALSA device "pulse". A second sink,
# mediagraph_plain (PULSE_SINK=mediagraph_plain), is a plain null sink that nothing keeps ticking, as on a
# server with no sound card and nothing else loaded: it starts a new stream up to 2 s late.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${MEDIAGRAPH_PULSE_DIR:-/tmp/mediagraph-pulse}"
export PULSE_SERVER="unix:$dir/native"
# espeak-ng: the test that regenerates the bundled speech sample (graphs/media/make_sample.py).
packages=(libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins espeak-ng)

install() {
    local missing=() p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "pulse.sh: missing ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
        return 1
    fi
    echo "pulse.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -q -y --no-install-recommends -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300
        install "${missing[@]}")
    # Update the package lists only when the install cannot find what it needs (a fresh machine has none);
    # the second attempt shows its errors.
    if ! "${apt[@]}" </dev/null >/dev/null 2>&1; then
        apt-get -q update </dev/null >/dev/null
        "${apt[@]}" </dev/null >/dev/null
    fi
}

running() { pactl info >/dev/null 2>&1; }

# module KIND NAME MODULE ARGS...: load MODULE unless `pactl list short KIND` already mentions NAME.
module() {
    local kind="$1" name="$2"
    shift 2
    pactl list short "$kind" | grep -qF "$name" || pactl load-module "$@" >/dev/null
}

start() {
    command -v pulseaudio >/dev/null || { echo "pulse.sh: pulseaudio is not installed (bash tools/pulse.sh installs it)" >&2; return 1; }
    if ! running; then
        mkdir -p "$dir/state"
        # -n: no default.pa (no hardware detection, no D-Bus); only the modules below. As root PulseAudio warns
        # that it is meant for a user session, then runs fine in this private directory.
        PULSE_RUNTIME_PATH="$dir" PULSE_STATE_PATH="$dir/state" HOME="$dir" pulseaudio \
            --daemonize=yes --use-pid-file=yes --exit-idle-time=-1 --disallow-exit=yes --disallow-module-loading=no \
            --log-target="file:$dir/log" -n \
            --load="module-native-protocol-unix socket=$dir/native auth-anonymous=1" \
            </dev/null >/dev/null 2>&1 || true
        local i
        for i in $(seq 50); do running && break; sleep 0.1; done
        running || { echo "pulse.sh: PulseAudio did not start; its log:" >&2; tail -n 20 "$dir/log" >&2 || true; return 1; }
    fi
    module sinks mediagraph_out module-null-sink sink_name=mediagraph_out rate=48000 channels=1
    module sources mediagraph_in module-virtual-source source_name=mediagraph_in master=mediagraph_out.monitor
    # An idle null sink renders in 2 s blocks and notices a new stream only at the end of the current one, so
    # streams would start up to 2 s late. A permanent low-latency reader of its monitor keeps it ticking every
    # few milliseconds: a loopback into a second null sink that nobody listens to.
    module sinks mediagraph_drain module-null-sink sink_name=mediagraph_drain rate=48000 channels=1
    module modules module-loopback module-loopback source=mediagraph_out.monitor sink=mediagraph_drain \
        latency_msec=20 source_dont_move=true sink_dont_move=true
    # The plain one: no reader of its monitor, so streams start on it as late as on a bare server.
    module sinks mediagraph_plain module-null-sink sink_name=mediagraph_plain rate=48000 channels=1
    pactl set-default-sink mediagraph_out
    pactl set-default-source mediagraph_in
}

if [ "${1:-}" != "--start" ]; then
    install
fi
start
