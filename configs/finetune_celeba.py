"""Stage-2 fine-tune of attributes_celeba from Faceptor-Full (see configs/finetune.py)."""

from configs import finetune


def get_config():
    return finetune.get_config("attributes_celeba")
