# Copied unchanged from huggingface/trl@f2cd57710 examples/scripts/cpo.py (lines 28-39)
python examples/scripts/cpo.py \
    --dataset_name trl-lib/ultrafeedback_binarized \
    --model_name_or_path gpt2 \
    --per_device_train_batch_size 4 \
    --max_steps 1000 \
    --learning_rate 8e-6 \
    --gradient_accumulation_steps 1 \
    --eval_steps 500 \
    --output_dir "gpt2-aligned-cpo" \
    --warmup_steps 150 \
    --logging_first_step \
    --no_remove_unused_columns
