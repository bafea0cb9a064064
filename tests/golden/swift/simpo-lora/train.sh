#!/usr/bin/env bash
# ms-swift 4.6.0 job written by uft for spec 'simpo-lora'.
# Run it with ms-swift alone: bash train.sh, where `swift` is ms-swift 4.6.0's command: uft's
# environment for it is `uft env path swift` (source "$(uft env path swift)/bin/activate" first).
set -euo pipefail
cd "$(dirname "$0")"
export USE_HF=1
export TOKENIZERS_PARALLELISM=false
swift rlhf \
    --rlhf_type simpo \
    --model Qwen/Qwen2.5-0.5B-Instruct \
    --template qwen \
    --use_chat_template true \
    --use_hf true \
    --check_model false \
    --tuner_type lora \
    --lora_rank 8 \
    --lora_alpha 16.0 \
    --lora_dropout 0.0 \
    --target_modules all-linear \
    --use_rslora false \
    --use_dora false \
    --init_weights true \
    --beta 2.0 \
    --cpo_alpha 0.0 \
    --simpo_gamma 0.5 \
    --dataset data/train.parquet \
    --split_dataset_ratio 0.0 \
    --dataset_shuffle false \
    --train_dataloader_shuffle false \
    --dataset_num_proc 1 \
    --dataloader_num_workers 0 \
    --max_length 512 \
    --truncation_strategy right \
    --loss_scale last_round \
    --packing false \
    --output_dir output \
    --add_version false \
    --logging_steps 1 \
    --logging_first_step false \
    --save_strategy steps \
    --save_steps 1000000 \
    --save_only_model true \
    --eval_strategy no \
    --report_to none \
    --per_device_train_batch_size 2 \
    --gradient_accumulation_steps 8 \
    --learning_rate 1e-06 \
    --num_train_epochs 1.0 \
    --max_steps -1 \
    --lr_scheduler_type cosine \
    --warmup_ratio 0.0 \
    --optim adamw_torch \
    --adam_beta1 0.9 \
    --adam_beta2 0.999 \
    --adam_epsilon 1e-08 \
    --weight_decay 0.0 \
    --max_grad_norm 1.0 \
    --gradient_checkpointing false \
    --torch_dtype float32 \
    --bf16 false \
    --fp16 false \
    --seed 42 \
    --data_seed 42
