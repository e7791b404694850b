#!/usr/bin/env bash
# Peak memory of a 224 px run with a ResNet-50-sized classifier (benchmarks/RESULTS.md, "Memory at
# 224 px"): 128 training + 16 test images per class (the shipped MNIST, classes 3 and 5, upscaled to
# 3x224x224 PNGs), torchvision's resnet50 with 2 outputs (random convolutions, BatchNorm statistics
# and a final layer fitted on these images: this measures memory, not boundaries, so --min-accuracy 0),
# the paper's autoencoder batch of 128, one autoencoder step per component (the generators do not learn in one
# step: DeepDIG finds no pairs and the trajectory is skipped; the baselines and the engine run),
# --max-steps 6 and 20 trajectory segments; everything else at its default.
#   PYTHON=python bash benchmarks/memory_224.sh [WORK_DIR]
set -euo pipefail
PY=${PYTHON:-python}
WORK=${1:-/tmp/deepdig-memory-224}
mkdir -p "$WORK"
[ -d "$WORK/mnist35" ] || "$PY" benchmarks/zoo_e2e.py folder "$WORK/mnist35" --classes 3,5 --size 224 --train 128 --test 16
"$PY" - "$WORK" <<'PY'
# random convolutional weights with BatchNorm statistics of these images and a final layer fitted on
# their features (a few seconds, instead of training a ResNet-50 on a 2-core CPU): a classifier that
# tells the two classes apart, so the baselines and the engine have pairs to refine
import sys, torch, torchvision
from deepdig_fast.data import as_unit, load_image_folder
work = sys.argv[1]
torch.manual_seed(0)
net = torchvision.models.resnet50(num_classes=2)
data = load_image_folder(f"{work}/mnist35")
x = as_unit(data.x_train)
norm = lambda t: (t - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
for m in net.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.reset_running_stats(); m.momentum = None
with torch.no_grad():
    net.train()
    for chunk in x.split(32):
        net(norm(chunk))
    net.eval()
    feats = torch.cat([torch.flatten(net.avgpool(net.layer4(net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(norm(c)))))))))), 1) for c in x.split(32)])
mu, sd = feats.mean(0), feats.std(0) + 1e-6
fc = torch.nn.Linear(2048, 2)
opt = torch.optim.Adam(fc.parameters(), lr=1e-2)
for _ in range(300):
    loss = torch.nn.functional.cross_entropy(fc((feats - mu) / sd), data.y_train)
    opt.zero_grad(); loss.backward(); opt.step()
with torch.no_grad():  # fold the feature standardisation into the final layer
    net.fc.weight.copy_(fc.weight / sd)
    net.fc.bias.copy_(fc.bias - (fc.weight / sd) @ mu)
    acc = float((net(norm(as_unit(data.x_test))).argmax(1) == data.y_test).float().mean())
print(f"resnet50: random convolutions, fitted final layer; test accuracy {acc:.3f}")
torch.save(net.state_dict(), f"{work}/r50.pt")
PY
rc=0
/usr/bin/time -v -o "$WORK/run.time" "$PY" -m deepdig_fast run --dataset imagefolder --data-root "$WORK/mnist35" \
  --model torchvision:resnet50 --weights "$WORK/r50.pt" --pair 3,5 --steps 1 --max-steps 6 \
  --trajectory-segments 20 --min-accuracy 0 --no-report --device cpu --out "$WORK/run" >"$WORK/run.log" 2>&1 || rc=$?
tail -n 30 "$WORK/run.log"
echo "== exit $rc, wall $(awk -F': ' '/Elapsed/ {print $2}' "$WORK/run.time")," \
  "peak RSS $(awk -F': ' '/Maximum resident/ {printf "%.2f GB", $2 / 1e6}' "$WORK/run.time")"
