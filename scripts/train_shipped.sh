#!/usr/bin/env bash
# Rebuild the diffusion-policy checkpoints shipped in checkpoints/ from scratch: record demonstrations
# with the scripted teleoperator through the full graph (seeds 1000.., never the evaluation seeds 0..49),
# convert them to a LeRobotDataset v3, train on this CPU.
#   reach, push     the nominal scene, object pose from perception (~25 min for both on 2 cores);
#                   push also trains push_prefix (committed action prefixes, for transition:=prefix)
#   push_points     randomized scenes (distractors, colours, sizes, light, camera jitter), the policy
#                   sees the joint state, the goal and the filtered cloud (~50 min: 200 demonstrations,
#                   each recorded 2 s past success, 6,000 steps). The shipped one is this recipe's
#                   (seeds 20000-20199, 188 kept: 24/50 randomized, 23/50 held-out; docs/policy.md)
#   push_image      the same demonstrations, the camera (64 px, crop 62) instead of the cloud (~17 min of
#                   training after them; the shipped one: 6/50 randomized, 9/50 held-out; docs/policy-results.md)
#   bash scripts/train_shipped.sh              # reach and push
#   bash scripts/train_shipped.sh push_points  # one target
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MUJOCO_GL="${MUJOCO_GL:-egl}"
ARMPILOT="${ARMPILOT_VENV:-.venv}/bin/armpilot"
WORK="${ARMPILOT_WORK:-out/shipped}"

ship() {  # ship NAME: copy the trained policy into checkpoints/NAME
  mkdir -p "checkpoints/$1"
  cp "$WORK/policy_$1"/{policy.safetensors,policy.json,loss.png,report.json} "checkpoints/$1/"
}

# record TASK SCENE EPISODES OBJECT_SOURCE [PUSH_JITTER [LINGER [SEED]]]: demonstrations into
# $WORK/dataset_TASK_SCENE_RECIPE (a dataset already recorded with the same recipe is kept; bags of a run that
# stopped partway are recorded again)
record() {
  local recipe="${3}ep_${4}_j${5:-0}_l${6:-0.5}_s${7:-1000}"
  DATASET="$WORK/dataset_$1_$2_$recipe"
  if [ ! -d "$DATASET" ]; then
    rm -rf "$WORK/bags_$1_$2_$recipe"
    "$ARMPILOT" record --task "$1" --scene "$2" --object-source "$4" --episodes "$3" --seed "${7:-1000}" \
      --push-jitter "${5:-0}" --linger "${6:-0.5}" --width 320 --height 240 --output "$WORK/bags_$1_$2_$recipe"
    "$ARMPILOT" convert "$WORK/bags_$1_$2_$recipe" --output "$DATASET" --overwrite
  fi
}

for target in ${@:-reach push}; do
  case "$target" in
    reach|push)
      record "$target" nominal 100 perception
      "$ARMPILOT" train "$DATASET" --output "$WORK/policy_diffusion_$target" --steps 3000 \
        --batch-size 128 --seed 0 --threads 2
      ship "diffusion_$target"
      if [ "$target" = push ]; then  # training-time real-time chunking: up to 8 frames (0.57 s) of prefix
        "$ARMPILOT" train "$DATASET" --output "$WORK/policy_diffusion_push_prefix" --steps 3000 \
          --batch-size 128 --seed 0 --threads 2 --prefix-frames 8
        ship diffusion_push_prefix
      fi
      ;;
    push_points)
      # the expert reads the true pose: the largest perceived object may be a distractor (the bags hold
      # what perception saw); each push starts about 1 cm sideways, so the demonstrations show it steer back;
      # 2 s past success, the expert finishes the push (to 8 mm) and lifts
      record push randomized 200 privileged 0.01 2.0 20000
      "$ARMPILOT" train "$DATASET" --output "$WORK/policy_diffusion_push_points" \
        --steps 6000 --batch-size 64 --seed 0 --threads 2 --inputs state,goal,points
      ship diffusion_push_points
      ;;
    push_image)  # the same demonstrations, the camera instead of the cloud (64 px: 96 px needs a GPU)
      record push randomized 200 privileged 0.01 2.0 20000
      "$ARMPILOT" train "$DATASET" --output "$WORK/policy_diffusion_push_image" --steps 2000 --batch-size 64 \
        --seed 0 --threads 2 --inputs state,goal,color --image-size 64 --image-crop 62
      ship diffusion_push_image
      ;;
    *) echo "unknown target '$target': use reach, push, push_points or push_image" >&2; exit 2 ;;
  esac
done
