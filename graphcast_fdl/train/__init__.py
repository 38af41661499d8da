"""Training: phases, optimiser, sharding, the CLU trainer loop, checkpoints."""
