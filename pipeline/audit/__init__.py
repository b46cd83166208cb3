"""The adversarial audit (issue 14): probes that vary the name, the prompt or the photo.

Library only so far; docs/audit.md defines the probes and the verdict rules.
"""
