"""The paper-profile grid on one lent GPU in one prepared call: plan (cells in priority order, committed ones
skipped), pack (data + cached inputs + wheels, in parts under the device tool's limit), run (on the GPU machine:
concurrent `eager-bench run` processes under one wall budget, one returned archive), unpack (verified into
results/). CLI: `eager-bench campaign`; device entry: eager_bench/campaign/device.sh; README, section GPU campaign."""
