"""Generate a large synthetic OTA-format versions repository, fast.

The viewer must stay fast on an archive the size of OTA's contrib-versions
(≈ 42,000 commits). This script writes such an archive in well under a minute
by streaming everything through ONE `git fast-import` process instead of
running one `git commit` per version.

The archive looks like a real one: one Markdown file per commit at
`<service id>/<terms type>.md`, OTA's commit subjects (`First record of`,
`Record new changes of`, `Apply technical or declaration upgrade on`), a body
naming the snapshot, an `X-engine-version` trailer, author and committer
dates equal to the fetch date, and commits in chronological order across
documents, as tracking runs produce them.

Default shape (≈ 40,000 versions):
- 800 documents of ~30 KB, most with ~46 versions;
- 3 "busy" documents with 1,100 versions each;
- 2 "large" documents of ~200 KB (for the diff benchmark).

Usage:
    python bench/make_archive.py /tmp/bench-archive            # creates /tmp/bench-archive/versions
    python bench/make_archive.py /tmp/bench-archive --append 5  # adds 5 commits to it
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TERMS_TYPES = list(json.loads((ROOT / "termshift" / "data" / "terms-types.json").read_text()))
START = 1451606400  # 2016-01-01T00:00:00Z
SPAN = 10 * 365 * 86400  # versions are spread over ten years
AUTHOR = "Termshift Bench <bench@termshift.invalid>"
SNAPSHOT_URL = "https://github.com/OpenTermsArchive/contrib-snapshots/commit/"

LEGAL_WORDS = ["account", "agreement", "applicable", "arbitration", "authorised", "breach", "claim", "consent", "content", "cookies", "data", "delete", "disclose", "dispute", "eligible", "governing", "indemnify", "information", "jurisdiction", "law", "liability", "licence", "limitation", "minor", "notice", "obligation", "party", "payment", "personal", "policy", "privacy", "process", "provider", "purpose", "reasonable", "refund", "rights", "security", "service", "share", "subscription", "suspend", "terminate", "third", "transfer", "user", "warranty", "withdraw", "you", "we", "our", "may", "must", "shall", "will", "not", "any", "all", "the", "of", "to", "and", "in", "for", "with", "by", "on", "at", "from", "under", "such", "this", "that", "these", "those", "including"]


def make_vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    """Legal words plus pronounceable pseudo-words, so texts are varied but word-like."""
    syllables = ["ra", "to", "mi", "ne", "sa", "lo", "ve", "ki", "du", "pe", "tri", "gal", "mon", "ser"]
    words = set(LEGAL_WORDS)
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


@dataclass
class Document:
    """One tracked document and the current state of its text (a list of blocks)."""

    service_id: str
    terms_type: str
    version_count: int
    target_bytes: int
    blocks: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"{self.service_id}/{self.terms_type}.md"


class TextMaker:
    """Builds and mutates Markdown made of headings, paragraphs and lists."""

    def __init__(self, rng: random.Random, sentences: int = 50_000):
        self.rng = rng
        self.vocabulary = make_vocabulary(rng)
        # Sentences are drawn from a large pre-made pool: generating every word
        # afresh was the slowest part of the script.
        self.sentences = [self._new_sentence() for _ in range(sentences)]

    def _new_sentence(self) -> str:
        words = self.rng.choices(self.vocabulary, k=self.rng.randint(8, 24))
        return words[0].capitalize() + " " + " ".join(words[1:]) + "."

    def sentence(self) -> str:
        return self.sentences[self.rng.randrange(len(self.sentences))]

    def paragraph(self) -> str:
        text = " ".join(self.sentence() for _ in range(self.rng.randint(2, 6)))
        if self.rng.random() < 0.3:
            slug = self.rng.choice(self.vocabulary)
            text += f" See [our {slug} page](https://example.com/legal/{slug})."
        return text

    def bullet_list(self) -> str:
        return "\n".join("*   " + self.sentence() for _ in range(self.rng.randint(2, 5)))

    def heading(self, number: int) -> str:
        title = " ".join(self.rng.choices(self.vocabulary, k=self.rng.randint(1, 4))).capitalize()
        if self.rng.random() < 0.5:
            return f"{number}. {title}\n" + "-" * (len(title) + len(str(number)) + 2)
        return f"### {number}. {title}"

    def initial(self, document: Document) -> list[str]:
        title = f"{document.service_id} {document.terms_type}"
        blocks = [f"{title}\n{'=' * len(title)}"]
        size, section = len(title), 0
        while size < document.target_bytes:
            if self.rng.random() < 0.15:
                section += 1
                block = self.heading(section)
            elif self.rng.random() < 0.2:
                block = self.bullet_list()
            else:
                block = self.paragraph()
            blocks.append(block)
            size += len(block) + 2
        return blocks

    def mutate(self, blocks: list[str]) -> None:
        """A realistic change: a few words, a new paragraph, a removed one, or a renamed heading."""
        for _ in range(self.rng.randint(1, 3)):
            index = self.rng.randrange(1, len(blocks))
            action = self.rng.random()
            if action < 0.5:
                words = blocks[index].split(" ")
                for _ in range(self.rng.randint(1, 6)):
                    words[self.rng.randrange(len(words))] = self.rng.choice(self.vocabulary)
                blocks[index] = " ".join(words)
            elif action < 0.7:
                blocks.insert(index, self.paragraph())
            elif action < 0.9 and len(blocks) > 10:
                del blocks[index]  # as likely as an insertion, so sizes stay stable
            else:
                blocks[index] = blocks[index] + " " + self.sentence()

    def technical_upgrade(self, blocks: list[str]) -> None:
        """A formatting-only change across the text, as a new extraction engine would make."""
        for index, block in enumerate(blocks):
            if block.startswith("*   "):
                blocks[index] = block.replace("*   ", "-   ")
            elif block.startswith("-   "):
                blocks[index] = block.replace("-   ", "*   ")


def make_documents(args: argparse.Namespace, rng: random.Random) -> list[Document]:
    services = []
    prefixes = ["Acme", "Nimbus", "Quokka", "Zephyr", "Orbit", "Lumen", "Café·Net", "Booking.example"]
    suffixes = ["Cloud", "Social", "Pay", "Maps", "Mail", "Shop", "Video", "Chat", "Drive", "Games"]
    number = 0
    while len(services) * 4 < args.documents:
        number += 1
        services.append(f"{rng.choice(prefixes)} {rng.choice(suffixes)} {number}")
    documents: list[Document] = []
    special = args.busy + args.large
    ordinary = args.documents - special
    remaining = args.versions - args.busy * args.busy_versions - args.large * args.large_versions
    per_document = max(2, remaining // max(1, ordinary))
    for index in range(args.documents):
        service = services[index // 4]
        terms_type = TERMS_TYPES[(index % 4) + (index // 4 % 3) * 4]
        if index < args.busy:
            count, size = args.busy_versions, args.size
        elif index < special:
            count, size = args.large_versions, args.large_size
        else:
            count, size = per_document + (1 if index - special < remaining % max(1, ordinary) else 0), args.size
        documents.append(Document(service, terms_type, count, size))
    return documents


def data_command(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def message(kind: str, document: Document, rng: random.Random) -> bytes:
    prefix = {
        "first": "First record of",
        "change": "Record new changes of",
        "technical": "Apply technical or declaration upgrade on",
    }[kind]
    snapshot = f"{rng.getrandbits(160):040x}"
    text = (
        f"{prefix} {document.service_id} {document.terms_type}\n\n"
        f"This version was recorded after extracting from snapshot {SNAPSHOT_URL}{snapshot}\n\n"
        "X-engine-version: 15.1.0\n"
    )
    return text.encode()


def write_blobs(stream, documents: list[Document], maker: TextMaker, rng: random.Random) -> list[tuple]:
    """Write every version's text, document by document (so fast-import deltas them well).

    Returns the commits to make: (timestamp, document index, blob mark, kind).
    """
    commits = []
    mark = 0
    for doc_index, document in enumerate(documents):
        document.blocks = maker.initial(document)
        times = sorted(rng.randrange(START, START + SPAN) for _ in range(document.version_count))
        for number, timestamp in enumerate(times):
            kind = "first"
            if number:
                kind = "technical" if rng.random() < 0.06 else "change"
                (maker.technical_upgrade if kind == "technical" else maker.mutate)(document.blocks)
            mark += 1
            stream.write(b"blob\nmark :%d\n" % mark + data_command("\n\n".join(document.blocks).encode()))
            commits.append((timestamp, doc_index, mark, kind))
        document.blocks = []  # free the text; only the marks are needed now
    return commits


def write_commits(stream, commits: list[tuple], documents: list[Document], rng: random.Random,
                  branch: str, parent: str | None) -> None:
    first = True
    for timestamp, doc_index, mark, kind in sorted(commits):
        document = documents[doc_index]
        stream.write(f"commit refs/heads/{branch}\n".encode())
        stream.write(f"author {AUTHOR} {timestamp} +0000\ncommitter {AUTHOR} {timestamp} +0000\n".encode())
        stream.write(data_command(message(kind, document, rng)))
        if first and parent:
            stream.write(f"from {parent}\n".encode())
        first = False
        stream.write(f"M 100644 :{mark} {document.path}\n".encode())


def run_fast_import(repo: Path, produce) -> None:
    process = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done"], cwd=repo, stdin=subprocess.PIPE
    )
    assert process.stdin is not None
    produce(process.stdin)
    process.stdin.write(b"done\n")
    process.stdin.close()
    if process.wait() != 0:
        raise SystemExit(f"git fast-import failed in {repo}")


def init_repo(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=False)
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "core.quotePath", "false"],
        ["git", "config", "user.name", "Termshift Bench"],
        ["git", "config", "user.email", "bench@termshift.invalid"],
    ):
        subprocess.run(command, cwd=repo, check=True)


def generate(destination: Path, args: argparse.Namespace) -> Path:
    """Create `destination/versions`; return its path."""
    repo = destination / "versions"
    init_repo(repo)
    rng = random.Random(args.seed)
    documents = make_documents(args, rng)
    maker = TextMaker(rng)

    def produce(stream) -> None:
        commits = write_blobs(stream, documents, maker, rng)
        write_commits(stream, commits, documents, rng, "main", None)

    run_fast_import(repo, produce)
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=repo, check=True)
    return repo


def append(repo: Path, count: int, seed: int = 99) -> list[str]:
    """Add `count` new versions (changes) to existing documents, dated after the last commit.

    Returns the paths changed. Uses fast-import too, continuing the current branch.
    """
    rng = random.Random(seed)
    maker = TextMaker(rng)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True)
    last = subprocess.run(["git", "log", "-1", "--format=%at"], cwd=repo, check=True,
                          capture_output=True, text=True)
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=repo, check=True, capture_output=True, text=True)
    paths = sorted(path for path in listing.stdout.split("\0") if path.endswith(".md") and "/" in path)
    chosen = rng.sample(paths, count)
    timestamp = int(last.stdout) + 3600

    def produce(stream) -> None:
        for number, path in enumerate(chosen):
            text = (repo / path).read_text(encoding="utf-8")
            blocks = text.split("\n\n")
            maker.mutate(blocks)
            service_id, terms_type = path[:-3].split("/", 1)
            document = Document(service_id, terms_type, 1, 0)
            stream.write(b"commit refs/heads/main\n")
            when = timestamp + number * 60
            stream.write(f"author {AUTHOR} {when} +0000\ncommitter {AUTHOR} {when} +0000\n".encode())
            stream.write(data_command(message("change", document, rng)))
            if number == 0:
                stream.write(f"from {head.stdout.strip()}\n".encode())
            stream.write(f"M 100644 inline {path}\n".encode() + data_command("\n\n".join(blocks).encode()))

    run_fast_import(repo, produce)
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=repo, check=True)
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("destination", type=Path, help="folder to create (gets a versions/ repository)")
    parser.add_argument("--versions", type=int, default=40_000, help="total number of versions")
    parser.add_argument("--documents", type=int, default=800)
    parser.add_argument("--busy", type=int, default=3, help="documents with very many versions")
    parser.add_argument("--busy-versions", type=int, default=1_100)
    parser.add_argument("--large", type=int, default=2, help="documents of --large-size bytes")
    parser.add_argument("--large-versions", type=int, default=50)
    parser.add_argument("--size", type=int, default=30_000, help="bytes of an ordinary document")
    parser.add_argument("--large-size", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--append", type=int, default=0, metavar="N",
                        help="instead of generating, add N versions to DESTINATION/versions")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.append:
        paths = append(args.destination / "versions", args.append, seed=args.seed + 1000)
        print(f"appended {len(paths)} versions in {time.perf_counter() - started:.1f} s")
        return
    if (args.destination / "versions").exists():
        sys.exit(f"{args.destination / 'versions'} already exists; choose another destination")
    repo = generate(args.destination, args)
    count = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=repo, check=True,
                           capture_output=True, text=True).stdout.strip()
    print(f"{repo}: {count} versions in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
