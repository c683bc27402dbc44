# Sourced by the validate-logs benchmarks: runs each cairn binary's `validate-logs` over one
# range under /usr/bin/time, prints its peak RSS, time and summary, and fails unless every
# binary's verdicts agree.
# measure_validators WORK_DIR TRAIL_ARN START END "EXTRA ARGUMENTS" BINARY...
measure_validators() {
  local work=$1 arn=$2 start=$3 end=$4 cairn rss seconds summary
  local -a extra summaries=()
  read -ra extra <<< "$5"
  shift 5
  for cairn in "$@"; do
    /usr/bin/time -f "%M %e" -o "$work/time" "$cairn" validate-logs "${extra[@]}" \
      --trail-arn "$arn" --start-time "$start" --end-time "$end" > "$work/out" 2> "$work/err" || true
    read -r rss seconds < <(tail -1 "$work/time")
    summary=$(grep -E "files (valid|INVALID)" "$work/out" | paste -sd ';')
    printf '%-40s peak RSS %7.1f MiB, %6.2f s: %s\n' "$cairn" "$(awk "BEGIN {print $rss / 1024}")" "$seconds" "$summary"
    summaries+=("$summary")
  done
  for summary in "${summaries[@]}"; do
    [ "$summary" = "${summaries[0]}" ] || { echo "the binaries' verdicts differ"; return 1; }
  done
}
