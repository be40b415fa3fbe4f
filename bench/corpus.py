"""Generate a deterministic krimppost project of N Dutch Markdown items for benchmarks.

    python bench/corpus.py OUT_DIR --count 5000 --seed 1

Same seed and count give byte-identical files. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import unicodedata
from datetime import date, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
MARKER = ".bench-corpus.json"  # written last: a complete corpus for (count, seed)
PODCAST_IMAGE = "afbeeldingen/podcast-omslag.png"  # config.toml's [podcast] image

TRACKS = ("wrb", "woningmarkt", "energietransitie")
# Weighted roughly like the real stream of items: mostly findings, progress and news.
KINDS = (
    ("finding",) * 5
    + ("progress",) * 4
    + ("news",) * 4
    + ("publication",) * 3
    + ("event",) * 3
    + ("podcast",) * 1
)

REGIONS = (
    "Achterhoek", "Oost-Groningen", "Noord-Oost Groningen", "Delfzijl en omgeving",
    "Eemsdelta", "Het Hogeland", "Parkstad Limburg", "Westelijke Mijnstreek",
    "Maastricht-Heuvelland", "Zeeuws-Vlaanderen", "Schouwen-Duiveland", "Walcheren",
    "De Marne", "Noordoost-Fryslân", "Zuidwest-Fryslân", "Kop van Noord-Holland",
    "Hoeksche Waard", "Goeree-Overflakkee", "Drentse Veenkoloniën", "Zuidoost-Drenthe",
    "Salland", "Twente", "Noordoost-Brabant", "Land van Cuijk", "Krimpenerwaard",
    "Alblasserwaard", "Texel", "Ameland", "Rivierenland", "Midden-Limburg",
)  # fmt: skip
PLACES = (
    "Heerlen", "Kerkrade", "Sittard", "Terneuzen", "Hulst", "Sluis", "Winterswijk",
    "Doetinchem", "Aalten", "Winschoten", "Veendam", "Stadskanaal", "Appingedam",
    "Emmen", "Hoogeveen", "Den Helder", "Zierikzee", "Middelburg", "Dokkum", "Sneek",
    "Oud-Beijerland", "Middelharnis", "Delfzijl", "Pekela", "Vaals", "Brunssum",
    "Oldambt", "Borger-Odoorn", "Hardenberg", "Enschede",
)  # fmt: skip
VENUES = (
    "het gemeentehuis", "het provinciehuis", "de bibliotheek", "het dorpshuis",
    "het cultuurcentrum", "de schouwburg", "het regiokantoor", "het innovatiecentrum",
)  # fmt: skip
TAGS = (
    "krimp", "anticipeerregio", "woningmarkt", "energietransitie", "warmtetransitie",
    "leefbaarheid", "voorzieningen", "vergrijzing", "ontgroening", "sloop",
    "transformatie", "herstructurering", "verduurzaming", "isolatie", "arbeidsmarkt",
    "onderwijs", "zorg", "mobiliteit", "brede welvaart", "regiodeal", "woonagenda",
    "bevolkingsprognose", "particuliere woningvoorraad", "corporaties", "leegstand",
    "erfgoed", "dorpskernen", "burgerinitiatief", "energiecoöperatie", "zonneparken",
    "netcongestie", "warmtenet", "subsidie", "masterclass", "webinar", "podcast",
    "onderzoek", "monitor", "grensregio", "jongeren",
)  # fmt: skip

SUBJECTS = (  # (singular?, subject)
    (True, "de gemeente"), (True, "de provincie"), (True, "het Rijk"),
    (True, "de woningcorporatie"), (True, "de regio"), (True, "de werkgroep"),
    (True, "het onderzoek"), (True, "de wethouder"), (True, "het expertisetraject"),
    (True, "de Wetenschappelijke Reflectiegroep"), (True, "de netbeheerder"),
    (True, "het programma"), (True, "de monitor"), (True, "de energiecoöperatie"),
    (True, "het regionale woningbouwprogramma"), (True, "de rekenkamer"),
    (False, "gemeenten"), (False, "provincies"), (False, "corporaties"),
    (False, "bewoners"), (False, "huiseigenaren"), (False, "onderzoekers"),
    (False, "ondernemers"), (False, "dorpsraden"), (False, "zorgaanbieders"),
    (False, "jongeren"), (False, "ouderen"), (False, "scholen"), (False, "vrijwilligers"),
    (False, "de deelnemers"), (False, "de partners in de regio"), (False, "beleidsmakers"),
)  # fmt: skip
VERBS = (  # (singular, plural, rest): "vraagt ... aandacht voor" splits around the subject
    ("onderzoekt", "onderzoeken", ""), ("versterkt", "versterken", ""),
    ("ondersteunt", "ondersteunen", ""), ("bespreekt", "bespreken", ""),
    ("verkent", "verkennen", ""), ("stimuleert", "stimuleren", ""),
    ("financiert", "financieren", ""), ("beschrijft", "beschrijven", ""),
    ("analyseert", "analyseren", ""), ("agendeert", "agenderen", ""),
    ("vergelijkt", "vergelijken", ""), ("verbetert", "verbeteren", ""),
    ("bundelt", "bundelen", ""), ("evalueert", "evalueren", ""),
    ("begeleidt", "begeleiden", ""), ("ontwikkelt", "ontwikkelen", ""),
    ("benut", "benutten", ""), ("herziet", "herzien", ""), ("plant", "plannen", ""),
    ("behoudt", "behouden", ""), ("organiseert", "organiseren", ""),
    ("onderschat", "onderschatten", ""), ("brengt", "brengen", "in kaart"),
    ("vraagt", "vragen", "aandacht voor"), ("werkt", "werken", "aan"),
    ("kijkt", "kijken", "naar"), ("investeert", "investeren", "in"),
    ("zet", "zetten", "in op"), ("houdt", "houden", "rekening met"),
    ("legt", "leggen", "de nadruk op"), ("heeft", "hebben", "zorgen over"),
)  # fmt: skip
NOUNS = (  # (article, noun); plural nouns use "de"
    ("de", "woningvoorraad"), ("de", "leefbaarheid"), ("het", "voorzieningenniveau"),
    ("de", "bevolkingsprognose"), ("de", "huishoudensontwikkeling"), ("de", "woonagenda"),
    ("de", "warmtetransitie"), ("het", "warmtenet"), ("de", "netcongestie"),
    ("de", "isolatie van woningen"), ("de", "betaalbaarheid"), ("het", "woningaanbod"),
    ("de", "arbeidsmarkt"), ("het", "onderwijsaanbod"), ("de", "bereikbaarheid"),
    ("de", "zorg"), ("het", "openbaar vervoer"), ("de", "dorpskern"),
    ("het", "maatschappelijk vastgoed"), ("de", "leegstand"), ("de", "sloop"),
    ("de", "transformatie"), ("de", "herstructurering"), ("de", "samenwerking"),
    ("het", "beleid"), ("de", "regiodeal"), ("het", "investeringsprogramma"),
    ("de", "brede welvaart"), ("de", "sociale samenhang"), ("het", "verenigingsleven"),
    ("de", "energiearmoede"), ("de", "zonne-energie"), ("de", "windenergie"),
    ("het", "energieverbruik"), ("de", "subsidieregeling"), ("het", "fonds"),
    ("de", "woningcorporaties"), ("de", "starters"), ("de", "doorstroming"),
    ("de", "levensloopbestendige woningen"), ("de", "huurwoningen"),
    ("de", "koopwoningen"), ("de", "particuliere eigenaren"), ("de", "grensregio"),
    ("het", "ruimtelijk beleid"), ("de", "vergrijzing"), ("de", "ontgroening"),
    ("de", "migratie"), ("de", "kennisdeling"), ("de", "uitvoeringskracht"),
    ("het", "erfgoed"), ("de", "agrarische bebouwing"), ("het", "landschap"),
    ("de", "financiering"), ("de", "monitoring"), ("de", "toekomstvisie"),
)  # fmt: skip
ADJECTIVES = (
    "regionale", "lokale", "betaalbare", "duurzame", "leegstaande", "verouderde",
    "structurele", "integrale", "kleine", "nieuwe", "bestaande", "gezamenlijke",
    "toekomstbestendige", "sociale", "kwetsbare", "landelijke", "flexibele",
    "grensoverschrijdende", "gemeentelijke", "provinciale", "particuliere",
    "energiezuinige", "langjarige", "praktische", "brede",
)  # fmt: skip
TAILS = (
    "in krimp- en anticipeerregio's", "op de lange termijn", "tot 2040", "tot 2035",
    "in de komende tien jaar", "binnen het expertisetraject", "samen met de provincie",
    "in kleine kernen", "aan beide kanten van de grens", "met een regionale aanpak",
    "voor de toekomst", "ondanks de dalende bevolking", "in overleg met bewoners",
    "binnen de bestaande budgetten", "op basis van nieuwe cijfers", "in het landelijk gebied",
    "met steun van het Rijk", "in de praktijk", "in samenhang met de woningmarkt",
    "zonder extra regels", "met oog voor de leefbaarheid", "na de eerste evaluatie",
)  # fmt: skip
OPENERS = (
    "Daarnaast", "Tegelijk", "Bovendien", "In de praktijk", "Volgens de onderzoekers",
    "Op dit moment", "Ook", "Vooral in kleine kernen", "Sinds vorig jaar",
    "In veel regio's", "Na afloop", "Volgens de cijfers", "Eerder al",
    "In het rapport", "Steeds vaker",
)  # fmt: skip
HEADINGS = (
    "Aanleiding", "Wat we zien", "De belangrijkste bevindingen", "Achtergrond",
    "Aanpak", "Resultaten", "Wat betekent dit voor gemeenten?", "Vervolgstappen",
    "Praktische informatie", "Voor wie?", "Wat kunt u verwachten?", "Cijfers",
    "Lessen uit de regio", "Aanbevelingen", "Woningmarkt en leefbaarheid",
    "Energietransitie in de praktijk", "Samenwerking met corporaties", "Financiering",
    "Rol van de provincie", "Stem van bewoners", "Over het onderzoek", "Tot slot",
    "Meer weten?", "Verantwoording", "Planning", "De gasten", "Luisteren",
)  # fmt: skip
TOPICS = (
    "vergrijzing en zorgpersoneel", "sloop en transformatie", "leegstand in dorpskernen",
    "de warmtetransitie voor particuliere eigenaren", "voorzieningen en bereikbaarheid",
    "vrijwilligers en sociale samenhang", "de woning van morgen", "netcongestie",
    "energiearmoede", "brede welvaart", "de regionale woonagenda",
    "levensloopbestendig wonen", "jongeren en onderwijs", "het openbaar vervoer",
    "herbestemming van kerken", "zonneparken en draagvlak", "de grensarbeidsmarkt",
    "de verduurzaming van huurwoningen", "opkoopregelingen", "agrarische leegstand",
)  # fmt: skip
TITLE_PREFIX = {
    "finding": ("Bevinding", "Reflectie", "Analyse"),
    "progress": ("Voortgang", "Stand van zaken", "Terugblik"),
    "news": ("Nieuws", "Nieuw", "Aangekondigd"),
    "publication": ("Publicatie", "Rapport", "Essay", "Handreiking"),
    "event": ("Masterclass", "Webinar", "Digitale bijeenkomst", "Werkconferentie"),
    "podcast": ("Podcast",),
}
# Links to other sites only: a made-up path on the site itself would be a broken internal
# link, which check and build report (issue 18).
LINK_HOSTS = (
    "https://www.rvo.nl/", "https://www.platform31.nl/",
    "https://www.rijksoverheid.nl/", "https://www.cbs.nl/", "https://www.pbl.nl/",
)  # fmt: skip
LINK_TEXTS = ("het rapport", "de samenvatting", "meer informatie", "de aanmeldpagina",
              "de factsheet", "het dossier", "de cijfers van het CBS", "de handreiking")  # fmt: skip


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def quote(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


class Writer:
    """Sentences, paragraphs and Markdown blocks from one seeded random source."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def phrase(self) -> str:
        article, noun = self.r.choice(NOUNS)
        if self.r.random() < 0.45:
            return f"{article} {self.r.choice(ADJECTIVES)} {noun}"
        return f"{article} {noun}"

    def sentence(self) -> str:
        r = self.r
        singular, subject = r.choice(SUBJECTS)
        sg, pl, rest = r.choice(VERBS)
        verb = sg if singular else pl
        obj = self.phrase()
        if r.random() < 0.12:
            obj = f"*{obj}*" if r.random() < 0.6 else f"**{obj}**"
        tail = f" {r.choice(TAILS)}" if r.random() < 0.7 else ""
        rest = f" {rest}" if rest else ""
        if r.random() < 0.35:  # an opener puts the verb second
            text = f"{r.choice(OPENERS)} {verb} {subject}{rest} {obj}{tail}"
        else:
            text = f"{subject} {verb}{rest} {obj}{tail}"
            if r.random() < 0.25:
                change = r.choice(("daalt", "groeit", "onder druk staat", "verandert"))
                text += f", terwijl {self.phrase()} {change}"
        return text[0].upper() + text[1:] + "."

    def paragraph(self) -> list[str]:
        sentences = [self.sentence() for _ in range(self.r.randint(3, 6))]
        if self.r.random() < 0.1:
            url = f"{self.r.choice(LINK_HOSTS)}{slugify(self.r.choice(TOPICS))}"
            sentences.append(f"Lees [{self.r.choice(LINK_TEXTS)}]({url}) voor meer informatie.")
        return [" ".join(sentences)]

    def bullets(self) -> list[str]:
        ordered = self.r.random() < 0.25
        lines = []
        for n in range(self.r.randint(3, 6)):
            mark = f"{n + 1}." if ordered else "-"
            lines.append(f"{mark} {self.phrase()} {self.r.choice(TAILS)};")
        lines[-1] = lines[-1][:-1] + "."
        return [f"{self.sentence()[:-1]}:", "", *lines]

    def table(self) -> list[str]:
        rows = ["| Regio | Inwoners 2024 | Prognose 2040 | Verschil |", "|---|---:|---:|---:|"]
        for region in self.r.sample(REGIONS, self.r.randint(3, 6)):
            now = self.r.randint(20_000, 250_000)
            later = int(now * self.r.uniform(0.8, 1.02))
            rows.append(f"| {region} | {now:,} | {later:,} | {(later - now) / now:+.1%} |")
        return rows


def item(index: int, rng: random.Random) -> tuple[str, str]:
    """Return (relative path under content/, file text) for item `index`."""
    w = Writer(rng)
    track = rng.choice(TRACKS)
    kind = rng.choice(KINDS)
    topic = rng.choice(TOPICS)
    regions = rng.sample(REGIONS, rng.randint(1, 3))
    title = f"{rng.choice(TITLE_PREFIX[kind])}: {topic} in {regions[0]}"
    if kind == "podcast":
        title = f"Podcast Wonen in krimpregio's, aflevering {index + 1}: {topic}"
    day = date(2024, 1, 1) + timedelta(days=rng.randrange(366 + 365 + 365))
    if rng.random() < 0.3:
        moment = datetime.combine(day, datetime.min.time()) + timedelta(
            minutes=rng.randrange(7 * 60, 19 * 60, 15)
        )
        date_text = moment.isoformat()
    else:
        date_text = day.isoformat()

    front = [
        "---",
        f"title: {quote(title)}",
        f"date: {date_text}",
        f"kind: {kind}",
        f"track: {track}",
        f"summary: {quote(w.sentence() + ' ' + w.sentence())}",
        f"tags: [{', '.join(quote(t) for t in rng.sample(TAGS, rng.randint(1, 5)))}]",
        f"regions: [{', '.join(quote(t) for t in regions)}]",
    ]
    if rng.random() < 0.03:
        front.append("draft: true")
    elif rng.random() < 0.03:
        front.append(f"publish_at: {(day + timedelta(days=rng.randint(1, 30))).isoformat()}T09:00")
    if kind == "event":
        start = datetime.combine(day + timedelta(days=rng.randint(7, 60)), datetime.min.time())
        start += timedelta(hours=rng.choice((9, 10, 13, 14, 19)), minutes=rng.choice((0, 30)))
        front += ["event:", f"  start: {start.isoformat()}"]
        if rng.random() < 0.7:
            front.append(f"  end: {(start + timedelta(hours=rng.randint(1, 4))).isoformat()}")
        place = rng.choice(PLACES)
        location = "online" if rng.random() < 0.3 else f"{rng.choice(VENUES)}, {place}"
        front.append(f"  location: {quote(location)}")
        if rng.random() < 0.6:
            front.append(f"  registration_url: https://www.platform31.nl/agenda/{slugify(title)}")
    elif kind == "podcast":
        seconds = rng.randint(20 * 60, 60 * 60)
        duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        front += [
            "audio:",
            f"  url: https://www.platform31.nl/podcasts/wonen-in-krimpregios/aflevering-{index + 1}.mp3",
            f"  length: {seconds * 16_000}",
            f'  duration: "{duration}"',
            "  type: audio/mpeg",
            # A podcast needs a transcript or a reason (issue 18); no random draw here, so
            # the rest of the corpus stays what it was.
            "transcript: false",
            "transcript_reason: Gegenereerde aflevering zonder opname.",
        ]
    front.append("---")

    blocks: list[list[str]] = [w.paragraph()]
    words, target = len(blocks[0][0].split()), rng.randint(535, 635)
    headings = rng.sample(HEADINGS, rng.randint(3, 6))
    for n, heading in enumerate(headings, 1):
        blocks.append([f"## {heading}"])
        section_end = target * n // len(headings) - 30  # ~half a paragraph: mean lands on target
        while words < section_end or blocks[-1][0].startswith("## "):
            block = w.bullets() if rng.random() < 0.18 else w.paragraph()
            blocks.append(block)
            words += sum(len(line.split()) for line in block)
    if rng.random() < 0.1:  # a table right under one of the headings
        at = rng.choice([i for i, b in enumerate(blocks) if b[0].startswith("## ")])
        blocks.insert(at + 1, w.table())
    if rng.random() < 0.1:  # a footnote reference in one paragraph, its text at the end
        at = rng.choice([i for i, b in enumerate(blocks) if len(b) == 1 and b[0][0] != "#"])
        blocks[at] = [blocks[at][0] + "[^1]"]
        source = rng.choice(("CBS", "PBL", "RIGO", "EIB"))
        blocks.append(
            [f"[^1]: Bron: {source}, bewerking door het programma Bevolkingsdaling ({day.year})."]
        )
    body = "\n\n".join("\n".join(block) for block in blocks)
    name = f"{slugify(title)[:70].strip('-')}-{index + 1:05d}.md"
    return f"{track}/{name}", "\n".join(front) + "\n" + body + "\n"


def generate(out: Path, count: int, seed: int) -> None:
    marker = out / MARKER
    content = out / "content"
    if content.exists():
        if not marker.exists():
            sys.exit(f"{content} exists and is not a generated corpus; refusing to overwrite")
        shutil.rmtree(content)
    marker.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    copy_project_files(out)
    for track in TRACKS:
        (content / track).mkdir()
    rng = random.Random(seed)
    for index in range(count):
        relative, text = item(index, rng)
        (content / relative).write_bytes(text.encode("utf-8"))
    marker.write_text(json.dumps({"count": count, "seed": seed}) + "\n", encoding="utf-8")


def copy_project_files(out: Path) -> None:
    """The project's config.toml and the podcast image it names; safe to repeat when they change."""
    shutil.copyfile(PROJECT / "config.toml", out / "config.toml")
    (out / "content" / PODCAST_IMAGE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT / "content" / PODCAST_IMAGE, out / "content" / PODCAST_IMAGE)


def is_generated(out: Path, count: int, seed: int) -> bool:
    try:
        return json.loads((out / MARKER).read_text(encoding="utf-8")) == {
            "count": count,
            "seed": seed,
        }
    except (OSError, ValueError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, metavar="OUT_DIR")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    generate(args.out, args.count, args.seed)
    print(f"{args.count} items (seed {args.seed}) in {args.out / 'content'}")


if __name__ == "__main__":
    main()
