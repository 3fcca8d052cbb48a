#!/usr/bin/env bash
# One prepared check of every GPU path, for a short loan of one H100 or H200 (under 8 minutes):
# the doctor (every impl against its reference, triton_flash at each autotune configuration),
# calibrate, the GPU headline points of the attention, attention_long, decoding and serving
# suites (suites/gpu_check/), the GPU-only claim suites cut to their headline points, the
# timer against triton's do_bench, and the claims table. Everything it measures lands in
# results/reference/<gpu>-<date>-*/, ready to commit; each step prints its time against its
# budget, and a step past its budget is stopped with SIGINT (a run keeps its records).
#
#   scripts/gpu_check.sh            on the GPU machine, from anywhere in the repository
#   scripts/gpu_check.sh --dry      the same steps on the CPU at tiny sizes (each suite's
#                                   devices.cpu section, TRITON_INTERPRET=1): is the script sound?
#                                   (also GPU_CHECK_DRY=1; tests/test_gpu_check.py runs it)
#   scripts/gpu_check.sh --wheels   here, with a package index: download the wheels of what the
#                                   GPU machine's image lacks (pydantic and its parts, plotly)
#                                   into .whl/ for the loan to carry
#
# Environment: GPU_CHECK_OUT (default results/reference) is where the folders go;
# GPU_CHECK_STEPS (e.g. "doctor claims_runs claims_table") runs only those steps, to redo one
# that failed; the steps: packages doctor calibrate attention attention_long decoding serving
# timer claims_runs claims_table;
# PYTHON (default python3); OUT, when set (the loan's output folder), also gets one tarball
# of the folders and the log.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT_DIR=$PWD

MODE=gpu
case "${1:-}" in
  --dry) MODE=dry ;;
  --wheels) MODE=wheels ;;
  "") [[ "${GPU_CHECK_DRY:-0}" == 1 ]] && MODE=dry ;;
  *) echo "scripts/gpu_check.sh: unknown argument '$1'; valid: --dry, --wheels" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT_DIR${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

# What the GPU machine's image lacks (its python is 3.12): the harness needs pydantic
# (pydantic-core, annotated-types and typing-inspection with it); `report` needs plotly.
# flash-attn has no wheel on PyPI (it builds from source against one torch and CUDA): its
# rows and claims are skipped with that reason unless a wheel built for the image's torch
# is carried in .whl/ too.
WHEEL_PACKAGES="pydantic pydantic-core annotated-types typing-inspection plotly"
REQUIRED_MODULES="torch numpy scipy pandas pyarrow yaml pydantic rich sacrebleu safetensors"

fetch_wheels() {
  local exclude
  exclude=$(git rev-parse --git-path info/exclude) || return 2
  grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
  local specs=()
  for package in $WHEEL_PACKAGES; do
    version=$($PY -c "from importlib.metadata import version; print(version('$package'))" 2>/dev/null) \
      && specs+=("$package==$version") || specs+=("$package")
  done
  echo "downloading ${specs[*]} (cp312, manylinux x86-64) into .whl/"
  $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${specs[@]}" || return 1
  du -sh .whl
  echo "carry them: run(command='bash scripts/gpu_check.sh', carry=['.whl'], timeout_s=600)"
}

if [[ $MODE == wheels ]]; then
  fetch_wheels
  exit $?
fi

missing_modules() {  # the required modules this python cannot import, space-separated
  $PY - "$@" <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}

check_packages() {
  local missing
  missing=$(missing_modules $REQUIRED_MODULES)
  if [[ -n $missing && -d .whl ]]; then  # carried wheels: install them beside the image's packages
    echo "installing the carried wheels in .whl/ into /tmp/site (missing: $missing)"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH="$PYTHONPATH:/tmp/site"
    missing=$(missing_modules $REQUIRED_MODULES)
  fi
  if [[ -n $missing ]]; then
    cat >&2 <<EOF
missing Python modules: $missing (the GPU machine's image has no pydantic).
Carry them as wheels: here, on a machine with a package index, in the repository's root,
    scripts/gpu_check.sh --wheels      (downloads $WHEEL_PACKAGES for Python 3.12 into .whl/)
then on the GPU machine run this script with .whl carried; it installs them into /tmp/site:
    run(command='bash scripts/gpu_check.sh', carry=['.whl'], timeout_s=600)
EOF
    return 3
  fi
  for optional in plotly flash_attn pynvml triton; do
    [[ -z $(missing_modules $optional) ]] || echo "optional: $optional is not installed (what needs it is skipped, with the reason)"
  done
}

if [[ $MODE == dry ]]; then
  DEVICE=cpu
  export TRITON_INTERPRET=1  # Triton kernels run in the interpreter on the CPU
  DOCTOR_ARGS=(--only triton_flash --only mamba_triton --only sdpa_flash --precision fp16)  # the kernels, one library call
  CALIBRATE_ARGS=(--quick)
  TIMER_ARGS=(--device cpu --quick)
  GPU=dry-cpu
else
  DEVICE=cuda
  DOCTOR_ARGS=()
  CALIBRATE_ARGS=()
  TIMER_ARGS=(--device cuda)
fi

STARTED=$(date +%s)
FAILED=()
# Seconds per step; together 7 min 25 s, inside a loan's 8 minutes (estimates: nothing here
# has run on a GPU yet; the log's step times are what to size them by). The doctor gets the
# most: its triton_flash rows compile each autotune configuration (~50 kernels).
declare -A BUDGET=([packages]=10 [doctor]=150 [calibrate]=30 [attention]=60 [attention_long]=40
                   [decoding]=40 [serving]=35 [timer]=20 [claims_runs]=45 [claims_table]=15)
TOTAL_BUDGET=0
for seconds in "${BUDGET[@]}"; do TOTAL_BUDGET=$((TOTAL_BUDGET + seconds)); done

step() {  # step NAME COMMAND...: run it under its budget (SIGINT at the end, SIGKILL 15 s later)
  local name=$1
  shift
  local budget=${BUDGET[$name]} start=$(date +%s) rc
  if [[ -n ${GPU_CHECK_STEPS:-} && " ${GPU_CHECK_STEPS//,/ } " != *" $name "* ]]; then
    return 0  # not among the steps asked for
  fi
  echo
  echo "== $name (budget ${budget} s; $(( $(date +%s) - STARTED )) s of ${TOTAL_BUDGET} s so far)"
  if declare -F "$1" > /dev/null; then  # a function of this script: run in a bash of its own (exported)
    timeout -s INT -k 15 "$budget" bash -c '"$@"' "$1" "$@"
  else
    timeout -s INT -k 15 "$budget" "$@"
  fi
  rc=$?
  local took=$(( $(date +%s) - start ))
  case $rc in
    0) echo "-- $name: done in ${took} s of ${budget} s" ;;
    124|130|137) echo "-- $name: stopped at its budget (${took} s of ${budget} s); what it saved is kept"
                 FAILED+=("$name (over budget)") ;;
    *) echo "-- $name: exit status $rc after ${took} s of ${budget} s"; FAILED+=("$name (exit $rc)") ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$budget" "$took" "$rc" >> "$DEST/steps.tsv"
  return 0
}

# Where the folders go: <gpu>-<date>-<what>, with the time added when that day's exist.
prefix_for() {
  local gpu=$1 day
  day=$(date -u +%Y-%m-%d)
  if compgen -G "$OUT_ROOT/$gpu-$day-*" > /dev/null; then
    echo "$gpu-$(date -u +%Y-%m-%dT%H%M)"
  else
    echo "$gpu-$day"
  fi
}

OUT_ROOT=${GPU_CHECK_OUT:-results/reference}
mkdir -p "$OUT_ROOT"
if [[ $MODE == gpu ]]; then
  check_packages || exit 3
  GPU=$($PY -c "import re, torch; n = torch.cuda.get_device_name().lower().replace('nvidia', '');
print(re.sub(r'[^a-z0-9]+', '-', n).strip('-'))" 2>/dev/null) \
    || { echo "scripts/gpu_check.sh: torch sees no CUDA device here; the CPU check is --dry" >&2; exit 2; }
fi
PREFIX=$(prefix_for "$GPU")
DEST=$OUT_ROOT/$PREFIX-summary  # the log, step times, doctor table, timer agreement, claims table
mkdir -p "$DEST"
exec > >(tee -a "$DEST/gpu_check.log") 2>&1
echo "gpu_check ($MODE, device $DEVICE) -> $OUT_ROOT/$PREFIX-*; git $(git rev-parse --short HEAD 2>/dev/null)"
printf 'step\tbudget_s\ttook_s\texit\n' > "$DEST/steps.tsv"

run_suite() {  # run_suite SUITE [harness run args...]: the run folder becomes $OUT_ROOT/$PREFIX-<suite name>
  local suite=$1 scratch rc run
  shift
  scratch=$(mktemp -d "$OUT_ROOT/.gpu_check.XXXXXX")
  $PY -m harness run "$suite" --device "$DEVICE" --out "$scratch" "$@"
  rc=$?
  for run in "$scratch"/*/; do
    [[ -d $run ]] || continue
    run=${run%/}
    local name=${run##*/}
    mv "$run" "$OUT_ROOT/$PREFIX-${name%-*}" && echo "run folder: $OUT_ROOT/$PREFIX-${name%-*}"
  done  # (<suite name>-<UTC time> -> <prefix>-<suite name>)
  rmdir "$scratch" 2>/dev/null
  return $rc
}

claims_runs() {  # the GPU-only claims' suites at their headline points
  run_suite suites/claims/triton_flash.yaml || return $?
  if [[ -n $(missing_modules flash_attn) ]]; then
    echo "flash-attn is not installed: the FlashAttention claims' suites are not run (their verdicts say so)"
    return 0
  fi
  run_suite suites/claims/flash_attention_2.yaml --where "seq_len == 4096 and head_dim == 128" || return $?
  run_suite suites/claims/flash_attention.yaml --where "seq_len in [1024, 4096]" || return $?
  run_suite suites/claims/fa_gpt2.yaml || return $?
  if [[ -z $(missing_modules flash_attn_interface) ]]; then
    run_suite suites/claims/flash_attention_3.yaml --where "seq_len == 4096 and head_dim == 128"
  fi
}

timer_agreement() {
  $PY scripts/timer_agreement.py "$@" | tee "$DEST/timer_agreement.txt"
  return "${PIPESTATUS[0]}"
}

export OUT_ROOT PREFIX DEVICE PY DEST REQUIRED_MODULES WHEEL_PACKAGES
export -f run_suite claims_runs missing_modules timer_agreement check_packages

step packages check_packages

step doctor $PY -m harness doctor --device "$DEVICE" "${DOCTOR_ARGS[@]}" --budget-s $((BUDGET[doctor] - 20)) \
  --json "$DEST/doctor.json"

export SEQBENCH_CALIBRATION=$OUT_ROOT/$PREFIX-calibration  # later runs add percent-of-peak columns
step calibrate $PY -m harness calibrate --device "$DEVICE" --out "$SEQBENCH_CALIBRATION" "${CALIBRATE_ARGS[@]}"

step attention run_suite suites/gpu_check/attention.yaml
step attention_long run_suite suites/gpu_check/attention_long.yaml
step decoding run_suite suites/gpu_check/decoding.yaml
step serving run_suite suites/gpu_check/serving.yaml
step timer timer_agreement "${TIMER_ARGS[@]}"
step claims_runs claims_runs

RUNS=()  # every run folder this check wrote
for run in "$OUT_ROOT/$PREFIX"-*/; do
  [[ -f $run/records.jsonl ]] && RUNS+=("${run%/}")
done
step claims_table $PY -m harness claims "${RUNS[@]}" --markdown "$DEST/claims.md"

TOOK=$(( $(date +%s) - STARTED ))
echo
echo "gpu_check: ${TOOK} s in all (budget ${TOTAL_BUDGET} s); folders: $OUT_ROOT/$PREFIX-*"
if [[ -n ${OUT:-} && -d ${OUT:-} ]]; then  # a loan's output folder: one tarball of everything
  tar czf "$OUT/gpu_check-$PREFIX.tar.gz" -C "$OUT_ROOT" $(cd "$OUT_ROOT" && ls -d "$PREFIX"-*) \
    && echo "tarball: $OUT/gpu_check-$PREFIX.tar.gz"
fi
if (( ${#FAILED[@]} )); then
  echo "not clean: ${FAILED[*]}"
  exit 1
fi
echo "all steps clean"
