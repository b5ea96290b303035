# shellcheck shell=bash
# What the GitHub Action's scripts share: GitHub's file commands (step outputs, environment,
# PATH, job summary), workflow-command messages, and the state that the restore action leaves
# for the save action in $RUNNER_TEMP/fbfs/state (KEY=VALUE lines; a later line wins, and
# `mount` lines accumulate).

action_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${RUNNER_TEMP:?is not set: these scripts run as steps of the fbfs GitHub Action}"
: "${GITHUB_WORKSPACE:?is not set: these scripts run as steps of the fbfs GitHub Action}"
work_dir=$RUNNER_TEMP/fbfs
state_file=${FBFS_ACTION_STATE:-$work_dir/state}
# Where actions/cache restores and saves, relative to the workspace as its paths are stored, so
# an entry restores on runners whose workspace, temp and home paths differ.
# shellcheck disable=SC2034  # used by the scripts that source this file
cache_dir=$GITHUB_WORKSPACE/.fbfs-cache

# A file command line: NAME=VALUE, or NAME<<DELIMITER for a value with newlines.
file_command() {
  local file=$1 name=$2 value=$3
  if [[ $value == *$'\n'* ]]; then
    local delimiter
    delimiter=fbfs_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s<<%s\n%s\n%s\n' "$name" "$delimiter" "$value" "$delimiter" >>"$file"
  else
    printf '%s=%s\n' "$name" "$value" >>"$file"
  fi
}
out() { file_command "$GITHUB_OUTPUT" "$1" "$2"; }
export_env() { file_command "$GITHUB_ENV" "$1" "$2"; }
summary() { printf '%s\n' "$@" >>"${GITHUB_STEP_SUMMARY:-/dev/null}"; }

# Workflow commands carry one line: %, CR and LF are escaped.
command_data() {
  local text=${1//%/%25}
  text=${text//$'\r'/%0D}
  printf '%s' "${text//$'\n'/%0A}"
}
warn() { echo "::warning title=fbfs::$(command_data "$1")"; }
error() { echo "::error title=fbfs::$(command_data "$1")"; }
verbose() { if [ "$(state_get verbose)" = true ]; then echo "fbfs: $*"; fi; }

state_set() { printf '%s=%s\n' "$1" "${2//$'\n'/ }" >>"$state_file"; }
state_get() { { grep "^$1=" "$state_file" 2>/dev/null || true; } | tail -n 1 | cut -d= -f2-; }
state_all() { { grep "^$1=" "$state_file" 2>/dev/null || true; } | cut -d= -f2-; }

# bool NAME VALUE: prints true or false; else says (on stderr, where the caller's $(...) does not
# swallow it) that input NAME must be one, and fails.
bool() {
  case "${2,,}" in
    true | yes | on | 1) echo true ;;
    false | no | off | 0) echo false ;;
    *)
      error "input $1 is '$2': write true or false" >&2
      return 1
      ;;
  esac
}

# The version of fbfs this action builds, from its CMakeLists.txt.
action_version() { sed -n 's/^project(fbfs VERSION \([0-9.]*\).*/\1/p' "$action_root/CMakeLists.txt"; }
