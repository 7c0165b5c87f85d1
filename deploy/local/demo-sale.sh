# Sourced by run.sh and cluster.sh: a fresh demo sale, active now, unless
# .env or the environment already names one.
: "${SALE_ID:=demo-$(date -u +%Y%m%d-%H%M%S)}"
: "${SALE_START_TIME:=$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
: "${SALE_END_TIME:=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)}"
: "${STOCK_QUANTITY:=100}"
export SALE_ID SALE_START_TIME SALE_END_TIME STOCK_QUANTITY
