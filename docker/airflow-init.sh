#!/usr/bin/env bash
# One-shot set-up of the docker compose stack (the airflow-init service):
#   1. migrate the metadata DB and create the web UI admin user;
#   2. check or create the landing and synced-products buckets and their expiry rules;
#   3. drop a sample landing file, unless FB_CATALOG_SEED_SAMPLE_PRODUCTS=false (real AWS);
#   4. parse the DAGs and unpause the hourly sync (DAGs are paused at creation: the ingestion DAG
#      needs an operational database this stack does not have, so it stays paused).
# Connections and Variables come from the environment (AIRFLOW_CONN_*, AIRFLOW_VAR_*), set once
# in docker-compose.yaml's x-airflow-common block for every service.
set -euo pipefail

echo "== Airflow $(airflow version): migrating the metadata DB"
airflow db migrate

echo "== Web UI user ${AIRFLOW_ADMIN_USERNAME}"
if ! airflow users list 2>/dev/null | grep -qw "${AIRFLOW_ADMIN_USERNAME}"; then
  airflow users create \
    --username "${AIRFLOW_ADMIN_USERNAME}" \
    --password "${AIRFLOW_ADMIN_PASSWORD}" \
    --firstname Airflow --lastname Admin --role Admin \
    --email "${AIRFLOW_ADMIN_USERNAME}@example.com"
fi

echo "== Buckets ${AIRFLOW_VAR_FACEBOOK_CATALOG_LANDING_BUCKET} and ${AIRFLOW_VAR_FACEBOOK_CATALOG_SYNCED_BUCKET}"
fb-catalog setup-buckets \
  --landing-bucket "${AIRFLOW_VAR_FACEBOOK_CATALOG_LANDING_BUCKET}" \
  --synced-bucket "${AIRFLOW_VAR_FACEBOOK_CATALOG_SYNCED_BUCKET}" \
  --create

if [ "${FB_CATALOG_SEED_SAMPLE_PRODUCTS:-true}" = "true" ]; then
  echo "== Sample landing file"
  python /opt/airflow/docker/seed_landing.py /opt/airflow/docker/sample-products.csv \
    "${AIRFLOW_VAR_FACEBOOK_CATALOG_LANDING_BUCKET}"
fi
echo "== Unpausing ${FB_CATALOG_UNPAUSE_DAG}"
airflow dags reserialize
airflow dags unpause --yes "${FB_CATALOG_UNPAUSE_DAG}"

echo "== Ready: http://localhost:${AIRFLOW_API_PORT:-8080} (user ${AIRFLOW_ADMIN_USERNAME})"
