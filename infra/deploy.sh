#!/usr/bin/env bash
# Deploys the marketplace-leads Function App (Flex Consumption) into your subscription and prints
# the LeadIngest URL (with its function key) to paste into Partner Center. Idempotent: ARM
# deployments are declarative, the resource group create is a no-op when it exists, the package is
# byte-identical for the same binary, and role assignments are only created when missing. With
# --inbox, the Microsoft Entra app registration is found again by its identifier URI (its redirect
# URI set again), its enterprise application, federated credential and your role are only created
# when missing, and a federated credential trusting another identity (a re-created resource group)
# is pointed at this app's.
#
# Written for bash 3.2 (macOS's /bin/bash) too: no associative arrays, no case conversion in
# expansions, no mapfile, and arrays that may be empty are expanded as ${a[@]+"${a[@]}"} because
# bash before 4.4 treats "${a[@]}" of an empty array as unbound under `set -u`.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: infra/deploy.sh --resource-group NAME [options]

  --resource-group NAME     resource group to create or update (required)
  --location REGION         Azure region with Flex Consumption (default: westeurope;
                            list: az functionapp list-flexconsumption-locations -o table)
  --app-name NAME           Function App name (default: the template's, derived from the group)
  --parameters FILE         ARM parameters file (see infra/azuredeploy.parameters.sample.json)
  --lead-destination KIND   https (default, keyless) or azureTable (turns shared-key access on,
                            for Partner Center's "Azure Table" destination)
  --alert-email ADDRESS     create the alerts and e-mail them to ADDRESS
  --vault-name-salt TEXT    give the Key Vault another name (template parameter vaultNameSalt):
                            for a group re-created while its old vault is still soft-deleted
  --grant-me-table-reader   give the signed-in user "Storage Table Data Reader" on the account, so
                            `handler leads list|export|status` work from this machine with az login
  --inbox                   set up the lead inbox's sign-in: create (or reuse) the Microsoft Entra app
                            registration with roles Leads.Read and Leads.Manage, keyless through the
                            app's identity, turn on App Service authentication (LeadIngest excluded)
                            and give you Leads.Manage. Needs the right to register applications
                            (and a tenant whose policy allows the registration's identifier URI).
                            Pass it on every run: without it the inbox is shut again
  --skip-build              reuse target/x86_64-unknown-linux-musl/release/handler
  --what-if                 print every step without changing anything (no Azure login needed; when
                            logged in, Azure's what-if of the template too, and --inbox looks up
                            the registration, reading only, to give it the client id)
  -h, --help                this help

Needs: az (logged in with `az login`), rustup + cargo, musl-tools (musl-gcc), python3.
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AZ="${AZ:-az}"
GROUP="" LOCATION="westeurope" APP_NAME="" PARAMS="" DESTINATION="" ALERT_EMAIL="" VAULT_SALT=""
SKIP_BUILD=0 WHAT_IF=0 GRANT_ME=0 INBOX=0
while [ $# -gt 0 ]; do
  case "$1" in
    --resource-group) GROUP="${2:?}"; shift 2 ;;
    --location) LOCATION="${2:?}"; shift 2 ;;
    --app-name) APP_NAME="${2:?}"; shift 2 ;;
    --parameters) PARAMS="${2:?}"; shift 2 ;;
    --lead-destination) DESTINATION="${2:?}"; shift 2 ;;
    --alert-email) ALERT_EMAIL="${2:?}"; shift 2 ;;
    --vault-name-salt) VAULT_SALT="${2:?}"; shift 2 ;;
    --grant-me-table-reader) GRANT_ME=1; shift ;;
    --inbox) INBOX=1; shift ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --what-if) WHAT_IF=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$GROUP" ] || { echo "error: --resource-group is required" >&2; usage >&2; exit 2; }
case "$DESTINATION" in
  ""|https|azureTable) ;;
  *) echo "error: --lead-destination must be https or azureTable" >&2; exit 2 ;;
esac

TEMPLATE="$ROOT/infra/azuredeploy.json"
TARGET=x86_64-unknown-linux-musl
BINARY="${HANDLER_BINARY:-$ROOT/target/$TARGET/release/handler}"  # HANDLER_BINARY: a binary built elsewhere
PACKAGE="${PACKAGE_PATH:-$ROOT/target/marketplace-leads.zip}"
DEPLOYMENT="marketplace-leads"
TABLE_READER_ROLE="76199698-9eea-4c19-bc75-cec21354c6b6"  # Storage Table Data Reader
# The inbox's app roles: fixed ids, so every run (and every registration) has the same ones.
LEADS_READ_ROLE="b563d09a-bedd-4a79-99ca-c11b43fd62b3"
LEADS_MANAGE_ROLE="8011039a-f070-4aac-a440-10fba0b55975"
GRAPH="https://graph.microsoft.com/v1.0"

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

# ask NAME PLACEHOLDER az ARGS...: sets NAME to what the command prints; in --what-if mode prints
# the command instead and sets NAME to PLACEHOLDER. Fails when the command fails.
ask() {
  local name="$1" placeholder="$2" answer=""
  shift 2
  if [ "$WHAT_IF" = 1 ]; then
    step "$@"
    answer="$placeholder"
  else
    shift  # the word az
    answer="$("$AZ" "$@")" || return 1
  fi
  printf -v "$name" '%s' "$answer"
}

# entra ARGS...: an az call on a directory object just created, retried a few times: new objects
# take a moment to replicate in Microsoft Entra ID. In --what-if mode prints it.
entra() {
  local n=1
  if [ "$WHAT_IF" = 1 ]; then step az "$@"; return 0; fi
  until "$AZ" "$@"; do
    [ "$n" -lt 6 ] || return 1
    echo "retrying in ${ENTRA_RETRY_SECONDS:-10} s (new directory objects take a moment to replicate)" >&2
    n=$((n + 1))
    sleep "${ENTRA_RETRY_SECONDS:-10}"
  done
}

# One output of the deployment (what-if: the app's name when known, from --app-name or, with a
# logged-in az and --inbox, the last deployment; else a placeholder naming the output).
KNOWN_APP="$APP_NAME"
output() {
  if [ "$WHAT_IF" = 1 ]; then
    if [ "$1" = functionAppName ] && [ -n "$KNOWN_APP" ]; then echo "$KNOWN_APP"; else echo "OUTPUT:$1"; fi
  else
    "$AZ" deployment group show --resource-group "$GROUP" --name "$DEPLOYMENT" --query "properties.outputs.$1.value" --output tsv
  fi
}

# Checks that need no Azure: the template parses, the package's parts exist.
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$TEMPLATE" || { echo "error: $TEMPLATE is not valid JSON" >&2; exit 1; }
for f in host.json LeadIngest/function.json LeadNotify/function.json Inbox/function.json; do
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

# 2. The package: handler at the root (mode 755: zip tools that do not record Unix modes would
# lose it, and the host could not start the binary), host.json and the function folders. Fixed
# timestamps, so the same binary gives the same bytes.
package() {
  python3 - "$ROOT" "$BINARY" "$PACKAGE" <<'PY'
import sys, zipfile
root, binary, out = sys.argv[1:4]
def add(z, name, data, mode):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16  # regular file with Unix permissions
    info.create_system = 3  # Unix, so unzip and the platform read the mode
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, data)
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    with open(binary, "rb") as f:
        add(z, "handler", f.read(), 0o755)
    for name in ("host.json", "LeadIngest/function.json", "LeadNotify/function.json", "Inbox/function.json"):
        with open(f"{root}/{name}", "rb") as f:
            add(z, name, f.read(), 0o644)
print(out)
PY
}
if [ "$WHAT_IF" = 1 ]; then
  echo "would package: $PACKAGE (handler mode 755, host.json, LeadIngest/function.json, LeadNotify/function.json, Inbox/function.json)"
else
  [ -x "$BINARY" ] || { echo "error: $BINARY not built (drop --skip-build)" >&2; exit 1; }
  mkdir -p "$(dirname "$PACKAGE")"
  package >/dev/null
fi

# 3. Resource group and template.
PARAM_ARGS=()
[ -n "$PARAMS" ] && PARAM_ARGS+=(--parameters "@$PARAMS")
[ -n "$APP_NAME" ] && PARAM_ARGS+=(--parameters "appName=$APP_NAME")
[ -n "$DESTINATION" ] && PARAM_ARGS+=(--parameters "leadDestination=$DESTINATION")
[ -n "$ALERT_EMAIL" ] && PARAM_ARGS+=(--parameters "alertEmail=$ALERT_EMAIL")
[ -n "$VAULT_SALT" ] && PARAM_ARGS+=(--parameters "vaultNameSalt=$VAULT_SALT")
step az group create --name "$GROUP" --location "$LOCATION" --output none

# The inbox's registration is found by its identifier URI, which names the tenant and the app.
# On a re-run it exists: its client id goes into this deployment, so one deployment does it all.
# On the first run the app's name (and host, for the redirect URI) is known only after the
# deployment, so the registration is made then and the template deployed a second time.
# --what-if with a logged-in az looks it up too (these calls only read): the template's what-if
# then gets the client id a real run would pass, instead of previewing the inbox being shut.
AZ_READY=0
if [ "$WHAT_IF" = 1 ] && command -v "$AZ" >/dev/null 2>&1 && "$AZ" account show >/dev/null 2>&1; then
  AZ_READY=1
fi
INBOX_CLIENT_ID="" TENANT=""
inbox_identifier_uri() { echo "api://$TENANT/marketplace-leads-$1"; }
if [ "$INBOX" = 1 ]; then
  if [ "$WHAT_IF" = 0 ] || [ "$AZ_READY" = 1 ]; then
    TENANT="$("$AZ" account show --query tenantId --output tsv)"
    if [ -z "$KNOWN_APP" ]; then
      KNOWN_APP="$("$AZ" deployment group show --resource-group "$GROUP" --name "$DEPLOYMENT" \
        --query properties.outputs.functionAppName.value --output tsv 2>/dev/null || true)"
    fi
    if [ -n "$KNOWN_APP" ]; then
      INBOX_CLIENT_ID="$("$AZ" ad app list --identifier-uri "$(inbox_identifier_uri "$KNOWN_APP")" --query "[0].appId" --output tsv || true)"
    fi
    if [ "$WHAT_IF" = 1 ] && [ -n "$INBOX_CLIENT_ID" ]; then
      echo "the inbox's app registration exists (client id $INBOX_CLIENT_ID): the what-if keeps its sign-in"
    elif [ "$WHAT_IF" = 1 ]; then
      echo "no app registration for the inbox exists yet (none with the identifier URI api://$TENANT/marketplace-leads-${KNOWN_APP:-<app>}): the first real run creates it; until then the what-if shows INBOX_AUTH and INBOX_TENANT_ID empty"
    fi
  else
    ask TENANT "OUTPUT:tenant-id" az account show --query tenantId --output tsv
    [ -z "$APP_NAME" ] || step az ad app list --identifier-uri "$(inbox_identifier_uri "$APP_NAME")" --query "[0].appId" --output tsv
  fi
  [ -z "$INBOX_CLIENT_ID" ] || PARAM_ARGS+=(--parameters "inboxClientId=$INBOX_CLIENT_ID")
fi

# A Key Vault deleted with its resource group stays soft-deleted for its retention (7 days) and
# keeps its name, so re-creating the group (same app name, same vault name) would fail. Name the
# vaults that came from this group and say how to get through.
DELETED_VAULTS=""
if [ "$WHAT_IF" = 1 ]; then
  step az keyvault list-deleted --resource-type vault --query "[].[name, properties.location, properties.vaultId]" --output tsv
else
  DELETED_VAULTS="$("$AZ" keyvault list-deleted --resource-type vault \
    --query "[].[name, properties.location, properties.vaultId]" --output tsv 2>/dev/null \
    | awk -F '\t' -v g="/resourcegroups/$GROUP/providers/" 'index(tolower($3), tolower(g)) { print $1 " " $2 }' || true)"
fi
deleted_vault_hint() {
  echo "note: soft-deleted Key Vault(s) from resource group $GROUP (name location):" >&2
  printf '%s\n' "$DELETED_VAULTS" | sed 's/^/  /' >&2
  cat >&2 <<MSG
  A deleted vault keeps its name until it is purged or its retention (7 days) ends. If the
  deployment fails because a vault of that name exists in deleted state, either purge it (its
  secrets are copies of your parameters; needs the purge permission on the subscription):
    az keyvault purge --name <name> --location <location>
  or give the new vault another name: run this script again with --vault-name-salt 2 (any
  short text; the template parameter vaultNameSalt).
MSG
}
[ -z "$DELETED_VAULTS" ] || deleted_vault_hint
if [ "$AZ_READY" = 1 ]; then
  "$AZ" deployment group what-if --resource-group "$GROUP" --template-file "$TEMPLATE" \
    ${PARAM_ARGS[@]+"${PARAM_ARGS[@]}"} || true
fi
step az deployment group create --resource-group "$GROUP" --name "$DEPLOYMENT" \
  --template-file "$TEMPLATE" ${PARAM_ARGS[@]+"${PARAM_ARGS[@]}"} --output none || {
  status=$?
  [ -z "$DELETED_VAULTS" ] || deleted_vault_hint
  exit "$status"
}

APP="$(output functionAppName)"
HOST="$(output defaultHostName)"
ACCOUNT="$(output storageAccountName)"

# 4. The code. On Flex Consumption this uploads the package to the app's deployment container,
# with the app's identity. Its role assignments are minutes old on a first deployment and may not
# apply yet: the upload is then refused (403), so it is retried, a bounded number of times.
ZIP_ATTEMPTS=10
ZIP_RETRY_SECONDS="${ZIP_RETRY_SECONDS:-30}"
if [ "$WHAT_IF" = 1 ]; then
  step az functionapp deployment source config-zip --resource-group "$GROUP" --name "$APP" --src "$PACKAGE" --output none
  echo "would retry the upload up to $ZIP_ATTEMPTS times, ${ZIP_RETRY_SECONDS} s apart, while it is refused with 403 (the identity's new roles take minutes to apply)"
else
  attempt=1
  while :; do
    if ERR="$("$AZ" functionapp deployment source config-zip --resource-group "$GROUP" --name "$APP" --src "$PACKAGE" --output none 2>&1 >/dev/null)"; then
      break
    fi
    case "$ERR" in
      *403*|*Forbidden*|*AuthorizationPermissionMismatch*|*AuthorizationFailure*|*InaccessibleStorage*|*"not authorized"*) ;;
      *) printf '%s\n' "$ERR" >&2; echo "error: the package upload failed" >&2; exit 1 ;;
    esac
    if [ "$attempt" -ge "$ZIP_ATTEMPTS" ]; then
      printf '%s\n' "$ERR" >&2
      echo "error: the package upload was still refused (403) after $ZIP_ATTEMPTS attempts; the identity's role assignments on the storage account may not apply yet: run this script again in a few minutes" >&2
      exit 1
    fi
    echo "the package upload was refused (403): the identity's new role assignments are not applied yet; retrying in ${ZIP_RETRY_SECONDS} s (attempt $attempt of $ZIP_ATTEMPTS)" >&2
    attempt=$((attempt + 1))
    sleep "$ZIP_RETRY_SECONDS"
  done
fi

# 5. Optional: read access to the lead table for the signed-in user (the lead tools on a laptop).
if [ "$GRANT_ME" = 1 ]; then
  if [ "$WHAT_IF" = 1 ]; then
    ME="OUTPUT:signed-in-user-id"
    step az ad signed-in-user show --query id --output tsv
  else
    ME="$("$AZ" ad signed-in-user show --query id --output tsv)"
  fi
  SCOPE="$(output storageAccountId)"
  if [ "$WHAT_IF" = 1 ]; then
    step az role assignment list --assignee "$ME" --role "$TABLE_READER_ROLE" --scope "$SCOPE" --query 'length(@)' --output tsv
    EXISTING=0
  else
    EXISTING="$("$AZ" role assignment list --assignee "$ME" --role "$TABLE_READER_ROLE" --scope "$SCOPE" --query 'length(@)' --output tsv)"
  fi
  if [ "${EXISTING:-0}" = 0 ]; then
    step az role assignment create --assignee-object-id "$ME" --assignee-principal-type User \
      --role "$TABLE_READER_ROLE" --scope "$SCOPE" --output none
  fi
fi

# 6. Optional: the lead inbox's sign-in. A failure here leaves the rest deployed (LeadIngest works,
# the inbox stays shut) and is reported at the end with a non-zero exit.
inbox_refused() { # what could not be done [the identifier URI, when that was being set]
  if [ -n "${2:-}" ]; then
    cat >&2 <<MSG
error: could not $1 in Microsoft Entra ID: the Azure CLI's answer above is the cause. Usually either
  - no right to register applications: the tenant's default "Users can register applications", or the
    Application Developer role (Cloud Application Administrator for a registration someone else owns); or
  - a tenant app-management policy on identifier URIs refusing $2
    (nonDefaultUriAddition allows only api://<client id> and api://<tenant>/<client id>): ask an administrator.
MSG
  else
    cat >&2 <<MSG
error: could not $1 in Microsoft Entra ID: the Azure CLI's answer above is the cause, usually no
  right to register applications: the tenant's default "Users can register applications", or the
  Application Developer role (Cloud Application Administrator for a registration someone else owns).
MSG
  fi
  cat >&2 <<MSG
  Everything else is deployed and LeadIngest works; the inbox stays shut. Run this script again with
  --inbox once that is solved, or without --inbox.
MSG
}
setup_inbox() {
  local uri callback roles found sp fic fic_subject me assigned principal
  uri="$(inbox_identifier_uri "$APP")"
  callback="https://$HOST/.auth/login/aad/callback"
  roles='[{"id":"'"$LEADS_READ_ROLE"'","value":"Leads.Read","displayName":"Leads.Read","description":"Look at the lead inbox","allowedMemberTypes":["User"],"isEnabled":true},{"id":"'"$LEADS_MANAGE_ROLE"'","value":"Leads.Manage","displayName":"Leads.Manage","description":"Look at the lead inbox, send a notification again, forget a customer","allowedMemberTypes":["User"],"isEnabled":true}]'
  # The registration: single tenant, the app's callback, ID tokens, the two app roles. In
  # --what-if mode whether it exists is known only from the lookup before the deployment (a
  # logged-in az); otherwise both ways are printed.
  ask found "${INBOX_CLIENT_ID:-OUTPUT:inbox-client-id}" az ad app list --identifier-uri "$uri" --query "[0].appId" --output tsv \
    || { inbox_refused "look up the inbox's app registration"; return 1; }
  INBOX_APP_ID="$found"
  [ "$WHAT_IF" = 0 ] || [ -n "$INBOX_CLIENT_ID" ] || found=""
  if [ -z "$found" ]; then
    [ "$WHAT_IF" = 0 ] || echo "would create the registration when none has the identifier URI $uri:"
    ask INBOX_APP_ID "OUTPUT:inbox-client-id" az ad app create --display-name "Marketplace leads inbox ($APP)" \
      --sign-in-audience AzureADMyOrg --identifier-uris "$uri" --web-redirect-uris "$callback" \
      --enable-id-token-issuance true --app-roles "$roles" --query appId --output tsv \
      || { inbox_refused "create the inbox's app registration" "$uri"; return 1; }
  fi
  [ -n "$INBOX_APP_ID" ] || { inbox_refused "create the inbox's app registration (no client id came back)"; return 1; }
  # An existing registration gets the callback again on every run (the same value changes nothing;
  # the app's host name is the one the deployment reports now) and keeps ID tokens on.
  if [ -n "$found" ] || [ "$WHAT_IF" = 1 ]; then
    [ "$WHAT_IF" = 0 ] || [ -n "$found" ] || echo "or, when it exists, set its redirect URI and ID tokens:"
    step az ad app update --id "$INBOX_APP_ID" --web-redirect-uris "$callback" --enable-id-token-issuance true \
      || { inbox_refused "set the redirect URI of the inbox's app registration"; return 1; }
  fi
  # Its enterprise application: only people (or groups) holding a role may sign in at all.
  ask sp "OUTPUT:inbox-sp-id" az ad sp list --filter "appId eq '$INBOX_APP_ID'" --query "[0].id" --output tsv \
    || { inbox_refused "look up the inbox's enterprise application"; return 1; }
  if [ -z "$sp" ] || [ "$WHAT_IF" = 1 ]; then
    [ "$WHAT_IF" = 0 ] || echo "would create the enterprise application when it does not exist:"
    ask sp "OUTPUT:inbox-sp-id" az ad sp create --id "$INBOX_APP_ID" --query id --output tsv \
      || { inbox_refused "create the inbox's enterprise application"; return 1; }
  fi
  INBOX_SP_ID="$sp"
  entra ad sp update --id "$sp" --set appRoleAssignmentRequired=true \
    || { inbox_refused "require role assignment on the enterprise application"; return 1; }
  # Keyless: the app's identity may sign the client assertion (federated identity credential). The
  # credential must name this identity: a resource group re-created under the same app name keeps
  # the registration (same identifier URI) but gets a new identity, so one that trusts another
  # subject is pointed at this one.
  principal="$(output identityPrincipalId)" && [ -n "$principal" ] \
    || { echo "error: the deployment has no identityPrincipalId output" >&2; return 1; }
  fic='"issuer":"'"https://login.microsoftonline.com/$TENANT/v2.0"'","subject":"'"$principal"'","audiences":["api://AzureADTokenExchange"],"description":"The Function App'"'"'s managed identity signs App Service authentication'"'"'s client assertion"'
  ask fic_subject "" az ad app federated-credential list --id "$INBOX_APP_ID" \
    --query "[?name=='function-app-identity'].subject | [0]" --output tsv \
    || { inbox_refused "read the registration's federated credentials"; return 1; }
  if [ -z "$fic_subject" ]; then
    [ "$WHAT_IF" = 0 ] || echo "would add the federated credential when the registration has none named function-app-identity:"
    entra ad app federated-credential create --id "$INBOX_APP_ID" --parameters '{"name":"function-app-identity",'"$fic"'}' \
      --output none || { inbox_refused "add the federated credential for the app's identity"; return 1; }
  fi
  if [ "$WHAT_IF" = 1 ] || { [ -n "$fic_subject" ] && [ "$fic_subject" != "$principal" ]; }; then
    if [ "$WHAT_IF" = 1 ]; then
      echo "or, when it has one trusting another identity (the resource group re-created), point it at this identity:"
    else
      echo "the federated credential function-app-identity trusts $fic_subject, not this app's identity $principal (a re-created resource group?): pointing it at $principal" >&2
    fi
    step az ad app federated-credential update --id "$INBOX_APP_ID" --federated-credential-id function-app-identity \
      --parameters "{$fic}" --output none \
      || { inbox_refused "point the federated credential at the app's identity"; return 1; }
  fi
  # The template again, now with the client id (only when it was not in the first deployment).
  if [ "$INBOX_APP_ID" != "$INBOX_CLIENT_ID" ]; then
    [ "$WHAT_IF" = 0 ] || echo "would deploy the template again with the new registration's client id (first run only):"
    step az deployment group create --resource-group "$GROUP" --name "$DEPLOYMENT" \
      --template-file "$TEMPLATE" ${PARAM_ARGS[@]+"${PARAM_ARGS[@]}"} --parameters "inboxClientId=$INBOX_APP_ID" --output none \
      || { echo "error: the deployment with the inbox's sign-in failed" >&2; return 1; }
  fi
  # Leads.Manage for the person running this (a service principal login has no signed-in user).
  if ask me "OUTPUT:signed-in-user-id" az ad signed-in-user show --query id --output tsv && [ -n "$me" ]; then
    ask assigned 0 az rest --method get --url "$GRAPH/servicePrincipals/$sp/appRoleAssignedTo" \
      --query "length(value[?principalId=='$me' && appRoleId=='$LEADS_MANAGE_ROLE'])" --output tsv \
      || { inbox_refused "read the inbox's role assignments"; return 1; }
    if [ "${assigned:-0}" = 0 ]; then
      entra rest --method post --url "$GRAPH/servicePrincipals/$sp/appRoleAssignedTo" \
        --headers "Content-Type=application/json" \
        --body '{"principalId":"'"$me"'","resourceId":"'"$sp"'","appRoleId":"'"$LEADS_MANAGE_ROLE"'"}' --output none \
        || { inbox_refused "give you the role Leads.Manage"; return 1; }
    fi
    INBOX_ME=1
  else
    echo "note: no signed-in user (a service principal login?): nobody holds an inbox role yet; grant one as shown below" >&2
  fi
}
INBOX_FAILED=0 INBOX_APP_ID="" INBOX_SP_ID="" INBOX_ME=0
if [ "$INBOX" = 1 ]; then
  setup_inbox || INBOX_FAILED=1
fi

# 7. The URL for Partner Center, with the LeadIngest function key.
if [ "$WHAT_IF" = 1 ]; then
  step az functionapp function keys list --resource-group "$GROUP" --name "$APP" --function-name LeadIngest --query default --output tsv
  KEY="FUNCTION-KEY"
else
  KEY=""
  for _ in $(seq 1 30); do # the function appears a few seconds after the deployment
    KEY="$("$AZ" functionapp function keys list --resource-group "$GROUP" --name "$APP" --function-name LeadIngest --query default --output tsv 2>/dev/null || true)"
    [ -n "$KEY" ] && break
    sleep 5
  done
  [ -n "$KEY" ] || {
    echo "error: no function key for LeadIngest yet; check the deployment and the app's traces in Application Insights ($APP-insights), then run this again" >&2
    exit 1
  }
fi
PREFIX=""
[ "$WHAT_IF" = 1 ] && PREFIX="would print: "
cat <<MSG

${PREFIX}Deployed. Paste this URL into Partner Center → offer → Customer leads → HTTPS endpoint:

  https://$HOST/api/LeadIngest?code=$KEY

Check it:  ./target/$TARGET/release/handler send-test-lead 'https://$HOST/api/LeadIngest?code=$KEY'
MSG
if [ "$DESTINATION" = azureTable ]; then
  cat <<MSG
"Azure Table" destination instead: give Partner Center the account's connection string, from
  az storage account show-connection-string --resource-group $GROUP --name $ACCOUNT --query connectionString --output tsv
MSG
fi
if [ "$INBOX" = 1 ] && [ "$INBOX_FAILED" = 0 ]; then
  HOLDER="Nobody holds a role yet."
  [ "$INBOX_ME" = 0 ] || HOLDER="You hold Leads.Manage."
  cat <<MSG

${PREFIX}Lead inbox: https://$HOST/api/Inbox (sign-in with Microsoft Entra ID). $HOLDER
Grant someone a role (Leads.Read: look; Leads.Manage: also send again and forget):
  az rest --method post --url $GRAPH/servicePrincipals/$INBOX_SP_ID/appRoleAssignedTo \\
    --body '{"principalId":"'"\$(az ad user show --id someone@contoso.com --query id -o tsv)"'","resourceId":"$INBOX_SP_ID","appRoleId":"$LEADS_READ_ROLE"}'
  (Leads.Manage: appRoleId $LEADS_MANAGE_ROLE), or in the Microsoft Entra admin center: Enterprise
  applications → "Marketplace leads inbox ($APP)" → Users and groups → Add user/group.
MSG
fi
if [ "$GRANT_ME" = 1 ]; then
  cat <<MSG
Lead tools from this machine (your az login, role assignments take a few minutes to apply):
  AzureWebJobsStorage__accountName=$ACCOUNT handler leads status
MSG
fi
if [ "$INBOX_FAILED" = 1 ]; then
  echo "error: the lead inbox's sign-in was not set up (see above); everything else is deployed" >&2
  exit 1
fi
