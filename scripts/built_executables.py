"""Reads cargo's JSON messages (`--message-format=json...`) on stdin and prints the executables a
build made, one a line: `test PATH` for a unit-test executable, `bin PATH` for a program.
Lets one cargo invocation yield both without guessing their hashed file names."""
import json
import sys

for line in sys.stdin:
    if not line.startswith("{"):
        continue
    msg = json.loads(line)
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    kind = "test" if msg["profile"]["test"] else "bin"
    print(kind, msg["executable"])
