"""Stage-2 fine-tune of expression_rafdb from Faceptor-Full (see configs/finetune.py)."""

from configs import finetune


def get_config():
    return finetune.get_config("expression_rafdb")
