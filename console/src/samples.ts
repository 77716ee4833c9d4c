/** What the playground's editor holds when a runtime is picked: a program that shows output arriving. */
export const SAMPLES: Record<string, string> = {
  python:
    'import sys\nimport time\n\nfor i in range(1, 6):\n    print(f"line {i}", flush=True)\n    time.sleep(0.4)\nprint("a note on stderr", file=sys.stderr)\nprint("done")\n',
  'ml-python': 'import numpy as np\n\nprint(np.arange(12).reshape(3, 4).sum(axis=0))\n',
  node: '(async () => {\n  for (let i = 1; i <= 5; i++) {\n    console.log(`line ${i}`)\n    await new Promise((r) => setTimeout(r, 400))\n  }\n})()\n',
  bash: 'for i in 1 2 3 4 5; do\n  echo "line $i"\n  sleep 0.4\ndone\necho "to stderr" >&2\n',
  c: '#include <stdio.h>\n\nint main(void) {\n  char name[64] = "world";\n  scanf("%63s", name);\n  printf("hello, %s\\n", name);\n  return 0;\n}\n',
  cpp: '#include <iostream>\n#include <string>\n\nint main() {\n  std::string name = "world";\n  std::cin >> name;\n  std::cout << "hello, " << name << "\\n";\n}\n',
  java: 'public class Main {\n  public static void main(String[] args) {\n    java.util.Scanner in = new java.util.Scanner(System.in);\n    System.out.println("hello, " + (in.hasNext() ? in.next() : "world"));\n  }\n}\n',
  go: 'package main\n\nimport "fmt"\n\nfunc main() {\n\tname := "world"\n\tfmt.Scan(&name)\n\tfmt.Printf("hello, %s\\n", name)\n}\n',
  rust: 'use std::io::Read;\n\nfn main() {\n    let mut name = String::new();\n    std::io::stdin().read_to_string(&mut name).unwrap();\n    let name = name.trim();\n    println!("hello, {}", if name.is_empty() { "world" } else { name });\n}\n',
}

export function sampleFor(runtime: string): string {
  return SAMPLES[runtime] ?? ''
}
