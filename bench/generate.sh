#!/bin/bash
# Generation throughput and time to first token at 1, 4 and 16 streams: inferd's engine (in-process
# through the pipeline, `inferd generate`) against ONNX Runtime called directly (bench/gen_ceiling.c,
# the ceiling), same model, same prompt, greedy, in the same run; the two alternate at each point.
#
#   bench/generate.sh [REPO (models)] [MODEL (tinylm)] [TOKENS (64)] [REPEAT (3)]
#   BASE_BIN=/path/to/other/inferd bench/generate.sh ...   # adds that build's figures, alternating
#
# BASE_BIN (optional) is another build of inferd (e.g. main's, to measure a change): it runs at
# each point between inferd and the ceiling, so the three see the same machine.
#
# Prints a markdown table: the best of REPEAT runs of each (the machine is shared and noisy; the
# best is the least disturbed). tokens/s counts every stream's tokens over the run's wall time;
# TTFT is the mean over streams (inferd prefills each stream on its own as it joins; the ceiling
# prefills the N identical prompts as one batch).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPO=${1:-$ROOT/models}
MODEL=${2:-tinylm}
TOKENS=${3:-64}
REPEAT=${4:-3}
BIN=${INFERD_BIN:-$ROOT/build/inferd}
CEIL=$ROOT/build/gen_ceiling
PROMPT="In the beginning God created the heaven and the earth"
VERSION_DIR=$(ls -d "$REPO/$MODEL"/*/ | sort -V | tail -1)
IDS=$(printf '%s' "$PROMPT" | "$BIN" tokenize --tokenizer "$VERSION_DIR/tokenizer.json" | tr -d '[] \n')
THREADS=$(/usr/bin/python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print(c.get('onnxruntime',{}).get('intra_op_threads',1))" "$REPO/$MODEL/config.json")

echo "model $MODEL, prompt of $(echo "$IDS" | tr ',' '\n' | wc -l) tokens, $TOKENS tokens per stream, intra-op threads $THREADS, best of $REPEAT"
echo
BASE_BIN=${BASE_BIN:-}
if [ -n "$BASE_BIN" ]; then
  echo "| streams | inferd tokens/s | base tokens/s | ceiling tokens/s | inferd / base | inferd / ceiling | inferd TTFT ms | base TTFT ms | ceiling TTFT ms |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
else
  echo "| streams | inferd tokens/s | ceiling tokens/s | inferd / ceiling | inferd TTFT ms | ceiling TTFT ms |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
fi
# one `inferd generate` run of $1: "tokens/s mean-TTFT-ms"
run_inferd() {
  "$1" generate --model-repository "$REPO" --model "$MODEL" --prompt "$PROMPT" --temperature 0 \
    --max-tokens "$TOKENS" --streams "$S" --json 2>/dev/null | tail -1 |
    /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(d['tokens_per_s'], d['mean_ttft_ms'])"
}
for S in 1 4 16; do
  best_i=0; best_c=0; best_b=0; ttft_i=0; ttft_c=0; ttft_b=0
  for _ in $(seq "$REPEAT"); do
    read -r tps ttft < <(run_inferd "$BIN")
    if /usr/bin/python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$tps" "$best_i"; then
      best_i=$tps; ttft_i=$ttft
    fi
    if [ -n "$BASE_BIN" ]; then
      read -r tps ttft < <(run_inferd "$BASE_BIN")
      if /usr/bin/python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$tps" "$best_b"; then
        best_b=$tps; ttft_b=$ttft
      fi
    fi
    line=$("$CEIL" "$VERSION_DIR/model.onnx" --prompt-ids "$IDS" --streams "$S" --max-tokens "$TOKENS" --threads "$THREADS")
    read -r tps ttft < <(echo "$line" | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(d['tokens_per_s'], d['ttft_ms'])")
    if /usr/bin/python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$tps" "$best_c"; then
      best_c=$tps; ttft_c=$ttft
    fi
  done
  if [ -n "$BASE_BIN" ]; then
    /usr/bin/python3 -c "import sys; i,b,c,ti,tb,tc=map(float,sys.argv[2:]); print(f'| {sys.argv[1]} | {i:,.0f} | {b:,.0f} | {c:,.0f} | {i/b:.2f} | {i/c:.2f} | {ti:.1f} | {tb:.1f} | {tc:.1f} |')" \
      "$S" "$best_i" "$best_b" "$best_c" "$ttft_i" "$ttft_b" "$ttft_c"
  else
    /usr/bin/python3 -c "import sys; i,c,ti,tc=map(float,sys.argv[2:]); print(f'| {sys.argv[1]} | {i:,.0f} | {c:,.0f} | {i/c:.2f} | {ti:.1f} | {tc:.1f} |')" \
      "$S" "$best_i" "$best_c" "$ttft_i" "$ttft_c"
  fi
done
