# Copied unchanged from huggingface/trl@f2cd57710 docs/source/peft_integration.md (lines 758-762)
accelerate launch trl/scripts/sft.py \
    --model_name_or_path meta-llama/Llama-2-70b-hf \
    --load_in_4bit \
    --use_peft \
    --lora_r 32
