"""Backdoor defenses that remove named people from a CLIP model (teacher/student fine-tuning).

- `config`: hyper-parameters (paper defaults) and their validation from params.yaml.
- `text_defense.train_text_defense`: names -> neutral target phrase in the text tower.
- `image_defense.train_image_defense`: faces -> mean face embedding in the image tower.
- `towers.build_defended_model`: one CLIP from the base and the defended tower(s).
- `paste`, `poisoned_captions`, `losses`, `training`: the pieces they share.
"""
