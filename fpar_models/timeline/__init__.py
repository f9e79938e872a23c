"""Timelines: a trained model slid over a long video, the windows' predictions turned into
segments of actions (torch-free: the gateway plans and draws with it).

    options.py   TimelineOptions, TimelineJob, TrainingData, plan_windows
    sampler.py   the video decoded once, each window's model inputs made as training's were
    segments.py  window probabilities -> segments; the annotation CSV POST /datasets ingests
    picture.py   timeline.png: segments, the top class's probability, thumbnails
"""
