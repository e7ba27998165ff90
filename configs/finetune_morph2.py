"""Stage-2 fine-tune of age_morph2 from Faceptor-Full (see configs/finetune.py)."""

from configs import finetune


def get_config():
    return finetune.get_config("age_morph2")
