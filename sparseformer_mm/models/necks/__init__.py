from .token_pooling import ActionTokenPooling, TokenPooling

__all__ = ['ActionTokenPooling', 'TokenPooling']
