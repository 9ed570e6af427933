#!/bin/sh
# MovieLens-100k for `python -m udfs evaluate` (optional; never needed by the tests).
# The ratings ship inside the RecBole wheel on PyPI (MIT code; the data stays under GroupLens'
# MovieLens terms: research use, cite Harper & Konstan 2015, do not redistribute), so this
# downloads the wheel with pip, without installing it, and writes
# user_id,item_id,rating,timestamp to $1 (default .persona/ml-100k.csv).
set -eu
out=${1:-.persona/ml-100k.csv}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$out")"
${PIP:-python3 -m pip} download --quiet --no-deps --only-binary=:all: recbole==1.2.1 -d "$tmp"
unzip -p "$tmp"/recbole-1.2.1-py3-none-any.whl recbole/dataset_example/ml-100k/ml-100k.inter \
  | awk -F'\t' 'BEGIN{OFS=","} NR==1{print "user_id","item_id","rating","timestamp";next}{print $1,$2,$3,$4}' \
  > "$out"
echo "$(($(wc -l < "$out") - 1)) ratings -> $out"
