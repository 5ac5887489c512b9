"""Baselines beside EAGER: RecBole's SASRec and BERT4Rec (wrapped, not rewritten) and TIGER."""
