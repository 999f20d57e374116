# Shared by scripts/dev, scripts/test and scripts/bench: installs the project's local tools
# (Azurite from npm, aiosmtpd from PyPI) into the repo and starts them on loopback.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$ROOT/target/local-services"
mkdir -p "$STATE_DIR"
PIDS=()

ensure_node_tools() {
  command -v npm >/dev/null || { echo "error: npm is needed (Node.js 18+) to install Azurite" >&2; exit 1; }
  if [ ! -x "$ROOT/node_modules/.bin/azurite-table" ]; then
    echo "installing Azurite (npm ci)…" >&2
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

ensure_python_tools() {
  command -v python3 >/dev/null || { echo "error: python3 is needed for the test SMTP server and checkov" >&2; exit 1; }
  # Installs when any tool is missing or older than scripts/requirements-test.txt pins.
  local stamp="$ROOT/.venv/requirements-test.txt"
  if [ ! -x "$ROOT/.venv/bin/aiosmtpd" ] || [ ! -x "$ROOT/.venv/bin/checkov" ] \
    || ! cmp -s "$ROOT/scripts/requirements-test.txt" "$stamp"; then
    echo "installing aiosmtpd and checkov into .venv…" >&2
    python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/scripts/requirements-test.txt" >&2
    cp "$ROOT/scripts/requirements-test.txt" "$stamp"
  fi
}

ensure_browser() { # Debian's chromium and chromedriver, for the inbox's browser tests (tests/contract/inbox_browser.rs)
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null || { echo "error: chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)" >&2; exit 1; }
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing chromium and chromium-driver (apt-get)…" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
}

run_checkov() { # checks infra/ offline; fails on any failed check (skips carry reasons in the template)
  BC_SKIP_MAPPING=TRUE "$ROOT/.venv/bin/checkov" --directory "$ROOT/infra" --framework arm --quiet --compact \
    --skip-download 2>"$STATE_DIR/checkov.log" || { cat "$STATE_DIR/checkov.log" >&2; return 1; }
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() { # port, name, log
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "error: $2 did not start on port $1; its log:" >&2
  cat "$3" >&2 || true
  exit 1
}

start_azurite() { # port [--inMemoryPersistence | data dir]
  local port="$1" persistence="${2:---inMemoryPersistence}" log="$STATE_DIR/azurite-$1.log"
  local args=(--tableHost 127.0.0.1 --tablePort "$port" --skipApiVersionCheck --disableTelemetry)
  if [ "$persistence" = "--inMemoryPersistence" ]; then
    args+=(--inMemoryPersistence)
  else
    mkdir -p "$persistence"
    args+=(--location "$persistence")
  fi
  "$ROOT/node_modules/.bin/azurite-table" "${args[@]}" >"$log" 2>&1 &
  PIDS+=($!)
  wait_for_port "$port" Azurite "$log"
}

start_smtp() { # port maildir
  local log="$STATE_DIR/smtp-$1.log"
  mkdir -p "$2/tmp" "$2/new" "$2/cur"  # a Maildir; aiosmtpd does not create it
  "$ROOT/.venv/bin/python" -m aiosmtpd -n -l "127.0.0.1:$1" -c aiosmtpd.handlers.Mailbox "$2" >"$log" 2>&1 &
  PIDS+=($!)
  wait_for_port "$1" "the SMTP server" "$log"
}

stop_services() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
}

azurite_connection_string() { # port
  # Azurite's well-known development account and key (public, not a secret).
  echo "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:$1/devstoreaccount1;"
}
