"""Recorded episodes -> training data: the shared resampler, the bag reader, the
LeRobotDataset v3.0 writer, the ``armpilot convert`` driver and the loader."""
