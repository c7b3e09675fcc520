#!/usr/bin/env bash
# Waits, bounded by time, until an SSH server answers at SSH_HOST:SSH_PORT with its banner
# ("SSH-2.0-..."), so the steps after it dial a machine that is ready. An EC2 instance is
# "running" long before its sshd answers; pulumi-command retries a failed dial only a number of
# times (fast failures such as "connection refused" use them up in under three minutes), and
# through a jump host a failed handshake does not recover. Run from the machine running Pulumi
# for a node reached directly, or on the jump host for a node reached through it. Needs only bash
# and coreutils (`timeout`); never logs in.
# Environment:
#   SSH_HOST          required: an IPv4 address or a DNS name
#   SSH_PORT          default 22
#   SSH_WAIT_SECONDS  default 600: the bound on the whole wait
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
if ! declare -F log_step >/dev/null; then . "$(dirname "${BASH_SOURCE[0]}")/common.sh"; fi
SCRIPT_NAME=wait-for-ssh.sh

# The first line the server sends within 5 s, or nothing (refused, filtered, silent).
first_line() {
    # shellcheck disable=SC2016,SC2153 # the inner script takes its arguments; SSH_HOST is required
    timeout 10 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 5 line <&3 && printf "%s" "$line"' \
        _ "$SSH_HOST" "$SSH_PORT" 2>/dev/null || true
}

main() {
    require_env SSH_HOST
    SSH_PORT=${SSH_PORT:-22}
    local bound=${SSH_WAIT_SECONDS:-600}
    [[ $SSH_HOST =~ ^[A-Za-z0-9.-]+$ ]] || die "SSH_HOST must be an address or a DNS name, not '${SSH_HOST}'"
    [[ $SSH_PORT =~ ^[0-9]{1,5}$ ]] || die "SSH_PORT must be a port number, not '${SSH_PORT}'"
    [[ $bound =~ ^[1-9][0-9]*$ ]] || die "SSH_WAIT_SECONDS must be a positive number, not '${bound}'"
    local start=$SECONDS line last=nothing
    while true; do
        line=$(first_line)
        line=${line%$'\r'}
        if [[ $line == SSH-* ]]; then
            log_step "${SSH_HOST}:${SSH_PORT} answers (${line}) after $((SECONDS - start))s"
            return 0
        fi
        [[ -z $line ]] || last="'${line:0:60}'"
        if [[ $((SECONDS - start)) -ge $bound ]]; then
            die "no SSH server answered at ${SSH_HOST}:${SSH_PORT} within ${bound}s (last answer: ${last}): is the machine booting, its sshd running, and this address allowed by the firewall (adminCidrs)?"
        fi
        sleep 3
    done
}

main "$@" </dev/null
