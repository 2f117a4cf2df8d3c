"""Run ``tinyedge`` with :mod:`tests.fakes.cv2_camera` standing in for USB cameras."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fakes import cv2_camera
from tinyedge.cli import main

cv2_camera.install()
sys.exit(main(sys.argv[1:]))
