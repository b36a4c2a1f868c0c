#!/usr/bin/env bash
# Prepares this checkout for `docker compose up`: .env (from .env.example), ./secrets (one file per
# secret: generated passwords; an empty file means "not used") and the host media directories.
# Never overwrites an existing file. Secret files are 0644 inside a 0700 directory: compose bind-mounts
# each file (uid 10001 and postgres must read it) while other host users cannot reach the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] || { cp .env.example .env; echo "created .env (edit host paths and ports)"; }
env_value() { sed -n "s/^$1=\([^ #]*\).*/\1/p" .env | tail -1; }
mkdir -p secrets && chmod 700 secrets
gen() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
put() {
  if [ ! -e "secrets/$1" ]; then printf '%s' "$2" > "secrets/$1"; chmod 644 "secrets/$1"; echo "created secrets/$1"; fi
}
put database_password "$(gen)"
put webhook_secret "$(gen)"
put flower_basic_auth "admin:$(gen)"
put metrics_basic_auth "prometheus:$(gen)"
for unused in worker_token registration_token s3_access_key_id s3_secret_access_key sftp_credentials ftp_credentials; do
  put "$unused" ""  # fill in when used: a token from `mediarunner tokens create`, keys, JSON logins
done
if [[ "$(env_value MEDIARUNNER_BROKER_URL)" == amqp://* ]]; then
  broker="$(gen)"
  put broker_password "$broker"
  put rabbitmq.conf "default_user = mediarunner
default_pass = $(cat secrets/broker_password)
"
else
  put broker_password ""  # Redis on the compose network has no password
  put rabbitmq.conf ""
fi
for d in "$(env_value MEDIARUNNER_INPUTS_DIR)" "$(env_value MEDIARUNNER_OUTPUTS_DIR)" "$(env_value MEDIARUNNER_MODELS_DIR)"; do
  mkdir -p "$d"
done
outputs="$(env_value MEDIARUNNER_OUTPUTS_DIR)"
if [ "$(stat -c %u "$outputs")" != 10001 ]; then
  if [ "$(id -u)" = 0 ]; then chown 10001:10001 "$outputs"; else
    echo "run: sudo chown 10001:10001 $outputs   (the containers write outputs as uid 10001)"; fi
fi
