# Sourced by the bench scripts: waits (30 s at most) for the listening line a
# gregor started in the background writes to LOG, then sets `port` to its
# Kafka port; on a timeout prints the log and exits 1.
wait_for_listener() {
  local log=$1 line=
  for _ in $(seq 1 300); do
    line=$(grep -m1 'gregor: listening on' "$log" || true)
    [[ -n $line ]] && break
    sleep 0.1
  done
  [[ -n $line ]] || { cat "$log" >&2; exit 1; }
  port=${line##*:}
}
