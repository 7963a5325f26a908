#!/usr/bin/env bash
# The shell steps of the nc-audit GitHub Action (action.yml calls this; tests/test_action.py runs it with
# the GITHUB_* variables set, as a runner would).
#
#   github_action.sh install   pip-installs $NC_AUDIT_INSTALL ("action": the action's own folder; empty:
#                              nothing, nc-audit is already installed) with $NC_AUDIT_PIP_ARGS
#   github_action.sh run       runs `nc-audit $NC_AUDIT_COMMAND $NC_AUDIT_ARGS` (measure or track), writing
#                              report.json, junit.xml, report.html and summary.md into $NC_AUDIT_OUTPUT_DIR;
#                              nc-audit appends the Markdown summary to $GITHUB_STEP_SUMMARY itself, this
#                              script adds where the files are; the outputs go to $GITHUB_OUTPUT; it exits
#                              with nc-audit's code (0 passed, 1 a check failed, 2 bad input)
#
# $NC_AUDIT_ARGS is split like a shell command line (Python's shlex), never evaluated: a rule such as
# 'nc1<=0.5' needs its quotes, and nothing in it can run a command.
set -euo pipefail

python_bin() {
    command -v python3 || command -v python || { echo "nc-audit action: no python on PATH" >&2; exit 2; }
}

install() {
    local spec="${NC_AUDIT_INSTALL-action}"
    if [[ -z "$spec" ]]; then
        echo "nc-audit action: install skipped; using $(command -v nc-audit || echo 'nc-audit (not found)')"
        return 0
    fi
    if [[ "$spec" == "action" ]]; then
        spec="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}"
    fi
    local -a extra=()
    if [[ -n "${NC_AUDIT_PIP_ARGS:-}" ]]; then
        read_words extra "$NC_AUDIT_PIP_ARGS"
    fi
    "$(python_bin)" -m pip install "${extra[@]}" "$spec"
}

read_words() {  # read_words ARRAY TEXT: ARRAY=(the shell words of TEXT), or exit 2 naming the problem
    local -n into="$1"
    local words
    words="$(mktemp)"
    if ! NC_AUDIT_WORDS="$2" "$(python_bin)" -c '
import os, shlex, sys
try:
    words = shlex.split(os.environ["NC_AUDIT_WORDS"])
except ValueError as error:
    sys.exit("nc-audit action: cannot split the arguments (%s): %s" % (error, os.environ["NC_AUDIT_WORDS"]))
sys.stdout.write("".join(word + "\0" for word in words))
' > "$words"; then
        rm -f "$words"
        exit 2
    fi
    mapfile -d '' -t into < "$words"
    rm -f "$words"
}

run() {
    local command="${NC_AUDIT_COMMAND:-measure}"
    case "$command" in
        measure | track) ;;
        *) echo "nc-audit action: command must be measure or track, got '$command'" >&2; exit 2 ;;
    esac
    local out="${NC_AUDIT_OUTPUT_DIR:-nc-audit-report}"
    mkdir -p "$out"
    local -a args=()
    read_words args "${NC_AUDIT_ARGS:-}"
    local code=0
    nc-audit "$command" "${args[@]}" \
        --json "$out/report.json" --junit "$out/junit.xml" --html "$out/report.html" \
        --markdown "$out/summary.md" || code=$?
    if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
        {
            echo "exit-code=$code"
            echo "report=$out/report.json"
            echo "junit=$out/junit.xml"
            echo "html=$out/report.html"
            echo "output-dir=$out"
        } >> "$GITHUB_OUTPUT"
    fi
    if [[ -n "${GITHUB_STEP_SUMMARY:-}" && -f "$out/report.json" ]]; then
        printf '\nnc-audit %s: JSON, JUnit and HTML reports in `%s` (uploaded as an artifact).\n' \
            "$command" "$out" >> "$GITHUB_STEP_SUMMARY"
    fi
    exit "$code"
}

case "${1:-}" in
    install) install ;;
    run) run ;;
    *) echo "usage: $0 install|run" >&2; exit 2 ;;
esac
