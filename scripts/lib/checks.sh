# Tallies for the shell self-checks: source it, call the checks, and end
# with `checks_summary`, which prints the counts and fails when any check
# failed.

passed=0 failed=0

pass() {
  passed=$((passed + 1))
  echo "ok   $1"
}

fail() {
  failed=$((failed + 1))
  echo "FAIL $1${2:+: $2}"
}

# check NAME COMMAND...: passes when the command succeeds.
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}

# expect NAME EXPECTED ACTUAL
expect() {
  if [[ $3 == "$2" ]]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi
}

# expect_match NAME EXTENDED_REGEX ACTUAL
expect_match() {
  if [[ $3 =~ $2 ]]; then pass "$1"; else fail "$1" "'$3' does not match /$2/"; fi
}

checks_summary() {
  echo "$passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}
