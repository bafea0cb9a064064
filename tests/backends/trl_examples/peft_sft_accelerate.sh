# Copied unchanged from huggingface/trl@f2cd57710 docs/source/peft_integration.md (lines 747-752)
accelerate launch trl/scripts/sft.py \
    --model_name_or_path Qwen/Qwen2-0.5B \
    --dataset_name trl-lib/Capybara \
    --use_peft \
    --lora_r 32 \
    --lora_alpha 16
