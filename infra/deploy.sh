#!/usr/bin/env bash
# Deploys the marketplace-leads Function App into your subscription and prints the LeadIngest URL
# (with its function key) to paste into Partner Center. Idempotent: ARM deployments are
# declarative, the resource group create is a no-op when it exists, and zip-deploying the same
# package again changes nothing.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: infra/deploy.sh --resource-group NAME [options]

  --resource-group NAME   resource group to create or update (required)
  --location REGION       Azure region (default: westeurope)
  --app-name NAME         Function App name (default: the template's, derived from the group)
  --parameters FILE       ARM parameters file (see infra/azuredeploy.parameters.sample.json)
  --skip-build            reuse target/x86_64-unknown-linux-musl/release/handler
  --what-if               print every step without changing anything (no Azure login needed)
  -h, --help              this help

Needs: az (logged in with `az login`), rustup + cargo, musl-tools (musl-gcc), python3.
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AZ="${AZ:-az}"
GROUP="" LOCATION="westeurope" APP_NAME="" PARAMS="" SKIP_BUILD=0 WHAT_IF=0
while [ $# -gt 0 ]; do
  case "$1" in
    --resource-group) GROUP="${2:?}"; shift 2 ;;
    --location) LOCATION="${2:?}"; shift 2 ;;
    --app-name) APP_NAME="${2:?}"; shift 2 ;;
    --parameters) PARAMS="${2:?}"; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --what-if) WHAT_IF=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$GROUP" ] || { echo "error: --resource-group is required" >&2; usage >&2; exit 2; }

TEMPLATE="$ROOT/infra/azuredeploy.json"
TARGET=x86_64-unknown-linux-musl
BINARY="${HANDLER_BINARY:-$ROOT/target/$TARGET/release/handler}"  # HANDLER_BINARY: a binary built elsewhere
PACKAGE="${PACKAGE_PATH:-$ROOT/target/marketplace-leads.zip}"
DEPLOYMENT="marketplace-leads"

# Runs a command, or in --what-if mode prints it. `az` means the Azure CLI ($AZ overrides it).
step() {
  if [ "$WHAT_IF" = 1 ]; then
    printf 'would run:'; printf ' %q' "$@"; printf '\n'
  elif [ "$1" = az ]; then
    shift
    "$AZ" "$@"
  else
    "$@"
  fi
}

# Checks that need no Azure: the template parses, the package's parts exist.
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TEMPLATE" || { echo "error: $TEMPLATE is not valid JSON" >&2; exit 1; }
for f in host.json LeadIngest/function.json LeadNotify/function.json; do
  [ -f "$ROOT/$f" ] || { echo "error: $f is missing" >&2; exit 1; }
done
if [ -n "$PARAMS" ]; then
  [ -f "$PARAMS" ] || { echo "error: parameters file $PARAMS not found" >&2; exit 1; }
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$PARAMS" || { echo "error: $PARAMS is not valid JSON" >&2; exit 1; }
fi

# 1. A static Linux x86-64 binary: no glibc floor on the Functions host.
if [ "$SKIP_BUILD" = 0 ]; then
  if [ "$WHAT_IF" = 0 ] && ! command -v musl-gcc >/dev/null; then
    echo "error: musl-gcc not found (the ring crate compiles C): apt-get install musl-tools" >&2
    exit 1
  fi
  step rustup target add "$TARGET"
  step cargo build --release --locked --target "$TARGET" --bin handler --manifest-path "$ROOT/Cargo.toml"
fi

# 2. The package: handler at the root (executable), host.json and the function folders.
package() {
  python3 - "$ROOT" "$BINARY" "$PACKAGE" <<'PY'
import sys, zipfile
root, binary, out = sys.argv[1:4]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    info = zipfile.ZipInfo("handler")
    info.external_attr = 0o100755 << 16  # regular file, rwxr-xr-x
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(binary, "rb") as f:
        z.writestr(info, f.read())
    for name in ("host.json", "LeadIngest/function.json", "LeadNotify/function.json"):
        z.write(f"{root}/{name}", name)
print(out)
PY
}
if [ "$WHAT_IF" = 1 ]; then
  echo "would package: $PACKAGE (handler, host.json, LeadIngest/function.json, LeadNotify/function.json)"
else
  [ -x "$BINARY" ] || { echo "error: $BINARY not built (drop --skip-build)" >&2; exit 1; }
  package >/dev/null
fi

# 3. Resource group and template.
PARAM_ARGS=()
[ -n "$PARAMS" ] && PARAM_ARGS+=(--parameters "@$PARAMS")
[ -n "$APP_NAME" ] && PARAM_ARGS+=(--parameters "appName=$APP_NAME")
step az group create --name "$GROUP" --location "$LOCATION" --output none
if [ "$WHAT_IF" = 1 ] && command -v "$AZ" >/dev/null 2>&1 && "$AZ" account show >/dev/null 2>&1; then
  "$AZ" deployment group what-if --resource-group "$GROUP" --template-file "$TEMPLATE" "${PARAM_ARGS[@]}" || true
fi
step az deployment group create --resource-group "$GROUP" --name "$DEPLOYMENT" \
  --template-file "$TEMPLATE" "${PARAM_ARGS[@]}" --output none

if [ "$WHAT_IF" = 1 ]; then
  APP="${APP_NAME:-<appName output>}" HOST="<defaultHostName output>"
else
  APP="$("$AZ" deployment group show -g "$GROUP" -n "$DEPLOYMENT" --query properties.outputs.functionAppName.value -o tsv)"
  HOST="$("$AZ" deployment group show -g "$GROUP" -n "$DEPLOYMENT" --query properties.outputs.defaultHostName.value -o tsv)"
fi

# 4. The code.
step az functionapp deployment source config-zip --resource-group "$GROUP" --name "$APP" --src "$PACKAGE" --output none

# 5. The URL for Partner Center, with the LeadIngest function key.
if [ "$WHAT_IF" = 1 ]; then
  step az functionapp function keys list --resource-group "$GROUP" --name "$APP" --function-name LeadIngest --query default -o tsv
  echo "would print: https://$HOST/api/LeadIngest?code=<function key>"
  exit 0
fi
KEY=""
for _ in $(seq 1 30); do # the function appears a few seconds after the zip deploy
  KEY="$("$AZ" functionapp function keys list -g "$GROUP" -n "$APP" --function-name LeadIngest --query default -o tsv 2>/dev/null || true)"
  [ -n "$KEY" ] && break
  sleep 5
done
[ -n "$KEY" ] || { echo "error: no function key for LeadIngest yet; check the app's logs (az webapp log tail -g $GROUP -n $APP)" >&2; exit 1; }
cat <<MSG

Deployed. Paste this URL into Partner Center → offer → Customer leads → HTTPS endpoint:

  https://$HOST/api/LeadIngest?code=$KEY

Check it:  ./target/$TARGET/release/handler send-test-lead 'https://$HOST/api/LeadIngest?code=$KEY'
MSG
