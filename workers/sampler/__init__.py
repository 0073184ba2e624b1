"""A faster, exact re-implementation of `SkyReelsV2DiffusionForcingPipeline.__call__` (text to video).

`generate(pipe, **kwargs)` takes the pipeline's own keyword arguments and computes the same function;
the speed comes only from not computing what cannot change the result:

* cond and uncond run as one batch, and the text's cross-attention keys/values are projected once;
* with a block-causal model (`causal_block_size > 1`) a forward covers only the blocks from the first
  whose input changed since it was last computed up to the last block the scheduler updates, with the
  earlier blocks' keys/values from a per-layer cache (`denoiser`), and attention runs per query block
  over its allowed key prefix instead of under a dense mask (`attention`);
* frames that share their whole schedule share one UniPC scheduler, stepped on all of them at once
  (`schedulers`);
* the VAE decodes latent frames as soon as the schedule has finished them (`incremental`), between the
  iterations that denoise later blocks, keeping its causal cache from call to call: the video is ready
  when the last block is, with no decode of the whole video after the loop, and a caller can show the
  frames as they come (`on_frames`).

Before a job the memory policy (`memory`) decides how many blocks' keys/values fit on the device:
all, some, or none (recomputed, still exact).

Random draws (the generator's latents, the global RNG's `addnoise_condition` noise) happen at the same
points, with the same shapes and order, as in the pipeline (`loop`), so both give the same video.
"""

from workers.sampler.decode import decode_latents
from workers.sampler.incremental import FinalFrames, IncrementalDecoder
from workers.sampler.loop import generate
from workers.sampler.memory import CachePolicy, MemoryPlan, plan_for_call
from workers.sampler.warmup import WarmUp, warm_up

__all__ = [
    "CachePolicy",
    "FinalFrames",
    "IncrementalDecoder",
    "MemoryPlan",
    "WarmUp",
    "decode_latents",
    "generate",
    "plan_for_call",
    "warm_up",
]
