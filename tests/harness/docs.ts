// Finds the toolkit commands an operator document tells people to type, so a test can prove that
// every make target and script flag it names still exists.

export interface DocCommand {
  file: string;
  line: number;
  text: string;
  /** `make <target>` commands. */
  target?: string;
  /** A script run directly (`./scripts/x.ts`, `/opt/makapix-ops/scripts/x.ts`), or through ARGS. */
  script?: string;
  flags: string[];
}

const flagsIn = (text: string) => [...text.matchAll(/(?:^|\s|")(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!);

/** Every make or script command inside the fenced code blocks of a Markdown text. */
export function commandsInMarkdown(markdown: string, file: string): DocCommand[] {
  const out: DocCommand[] = [];
  let inBlock = false;
  markdown.split('\n').forEach((raw, i) => {
    if (/^\s*```/.test(raw)) {
      inBlock = !inBlock;
      return;
    }
    if (!inBlock) return;
    const text = raw.replace(/\s+#.*$/, '').trim();
    // Commands may follow a prompt, a cron schedule or `sudo`.
    const make = /(?:^|\s|&&\s*)make\s+([a-z][a-z0-9-]*)(.*)$/.exec(text);
    if (make) {
      out.push({ file, line: i + 1, text, target: make[1]!, flags: flagsIn(make[2]!.match(/ARGS=("[^"]*"|'[^']*'|\S+)/)?.[1] ?? '') });
      return;
    }
    const script = /(?:^|\s)(?:\S*\/)?scripts\/([a-z0-9-]+\.ts)\b(.*)$/.exec(text);
    if (script) out.push({ file, line: i + 1, text, script: script[1]!, flags: flagsIn(script[2]!) });
  });
  return out;
}

/** The targets a Makefile defines and, for each, the script its recipe runs (if any). */
export function makeTargets(makefile: string): Map<string, string | undefined> {
  const targets = new Map<string, string | undefined>();
  let current: string[] = [];
  for (const line of makefile.split('\n')) {
    const rule = /^([a-zA-Z0-9_-]+(?:\s+[a-zA-Z0-9_-]+)*)\s*:(?!=)/.exec(line);
    if (rule) {
      current = rule[1]!.split(/\s+/);
      for (const t of current) if (!targets.has(t)) targets.set(t, undefined);
      continue;
    }
    const script = /^\t.*\$\(S\)\/([a-z0-9-]+\.ts)/.exec(line);
    if (script) for (const t of current) targets.set(t, targets.get(t) ?? script[1]);
  }
  return targets;
}
