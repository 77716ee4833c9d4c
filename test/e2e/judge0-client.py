"""Drives Airlock's Judge0 adapter with the official Judge0 Python client, unchanged.

Run by test/e2e/judge0.test.ts with JUDGE0_URL (the adapter's base URL) and JUDGE0_KEY
(a tenant's API key); prints what the client returned as one JSON object, which the test
checks. The client polls (wait=false) and always asks for base64; one list of submissions
goes as a batch (POST and GET /submissions/batch).
"""

import json
import os

import judge0
from judge0 import Client, LanguageAlias, MaxWaitTime, Submission

client = Client(
    os.environ["JUDGE0_URL"],
    {"X-Auth-Token": os.environ["JUDGE0_KEY"]},
    retry_strategy=MaxWaitTime(120),
)


def dump(s):
    return {
        "token": str(s.token),
        "status": int(s.status) if s.status is not None else None,
        "stdout": s.stdout,
        "stderr": s.stderr,
        "compile_output": s.compile_output,
        "message": s.message,
        "exit_code": s.exit_code,
        "exit_signal": s.exit_signal,
        "time": s.time,
        "memory": s.memory,
        "finished": s.finished_at is not None,
    }


C_SUM = '#include <stdio.h>\nint main(void) { int a, b; if (scanf("%d %d", &a, &b) != 2) return 1; printf("%d\\n", a + b); return 0; }\n'
JAVA = 'public class Main { public static void main(String[] args) { System.out.println("java " + (6 * 7)); } }\n'
RUST = 'fn main() { let v: Vec<u32> = (1..=4).collect(); println!("rust {}", v.iter().sum::<u32>()); }\n'

single = judge0.run(
    client=client,
    source_code='import sys\nprint(sys.stdin.read().strip().upper(), "h\u00e9llo \u2713")\n',
    language=LanguageAlias.PYTHON,
    stdin="shout",
)

batch = judge0.run(
    client=client,
    submissions=[
        Submission(source_code=C_SUM, language=LanguageAlias.C, stdin="2 3"),
        Submission(source_code=JAVA, language=LanguageAlias.JAVA),
        Submission(source_code=RUST, language=LanguageAlias.RUST),
        Submission(source_code="int main( {\n", language=LanguageAlias.CPP),
        Submission(source_code="print(41)\n", language=LanguageAlias.PYTHON, expected_output="42"),
        Submission(source_code="print(\"42  \")\n", language=LanguageAlias.PYTHON, expected_output="42\n\n"),
        Submission(source_code="import time\ntime.sleep(10)\n", language=LanguageAlias.PYTHON, wall_time_limit=0.5),
        Submission(source_code='import sys\nsys.stderr.write("boom")\nsys.exit(3)\n', language=LanguageAlias.PYTHON),
        Submission(source_code="import os\nos.abort()\n", language=LanguageAlias.PYTHON),
    ],
)

print(
    json.dumps(
        {
            "version": client.version,
            "languages": {lang.id: lang.name for lang in client.languages},
            "config": {"max_submission_batch_size": client.config.max_submission_batch_size, "enable_network": client.config.enable_network},
            "supports_cpp_alias": client.is_language_supported(LanguageAlias.CPP),
            "single": dump(single),
            "batch": [dump(s) for s in batch],
        }
    )
)
