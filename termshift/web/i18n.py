"""Interface languages (English, French): the catalogue, the choice, and formatting.

Templates write English text inside `_("…")` (or `_n(singular, plural, n)`); the
catalogue below maps it to French. The language comes from `?lang=fr` (remembered in a
cookie), else the cookie, else the browser's Accept-Language. A missing translation
falls back to English; tests check that every text used in a template is translated.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, urlencode

from flask import Flask, Response, g, request

from termshift import urls

LANGUAGES = [("en", "English"), ("fr", "Français")]
CODES = [code for code, _label in LANGUAGES]
COOKIE = "lang"

FRENCH: dict[str, str] = {
    # Layout
    "Terms archive": "Archive des conditions",
    "Skip to main content": "Aller au contenu principal",
    "Main": "Navigation principale",
    "Services": "Services",
    "Latest changes": "Derniers changements",
    "Search services, documents and texts": "Chercher un service, un document ou un texte",
    "Search": "Chercher",
    "Language": "Langue",
    "Breadcrumbs": "Fil d'Ariane",
    "Follow these changes:": "Suivre ces changements :",
    "Atom feed": "Flux Atom",
    "RSS feed": "Flux RSS",
    "Subscribe:": "S'abonner :",
    "This page as JSON": "Cette page en JSON",
    "API description (OpenAPI)": "Description de l'API (OpenAPI)",
    "Pages": "Pages",
    "Newer": "Plus récents",
    "Older": "Plus anciens",
    "Page {page} of {pages}": "Page {page} sur {pages}",
    # Index progress (banner, error page)
    "Indexing the archive: {indexed} of {total} versions ({percent} %). Pages show what is indexed so far.":
        "Indexation de l'archive : {indexed} versions sur {total} ({percent} %). Les pages montrent ce qui est "
        "déjà indexé.",
    "Nothing recorded yet: pages fill in after the first tracking run records versions.":
        "Rien n'est encore enregistré : les pages se rempliront après le premier suivi qui enregistre des versions.",
    "Not indexed yet": "Pas encore indexé",
    "estimated: this change is too large to count word by word":
        "estimation : ce changement est trop long pour être compté mot à mot",
    "Viewer index": "Index de la visionneuse",
    "Complete: {n} versions indexed.": "Complet : {n} versions indexées.",
    "Indexing: {indexed} of {total} versions.": "Indexation : {indexed} versions sur {total}.",
    "This page's data is not indexed yet: {indexed} of {total} versions are. "
    "This page reloads by itself in a few seconds.":
        "Les données de cette page ne sont pas encore indexées : {indexed} versions sur {total} le sont. "
        "Cette page se recharge d'elle-même dans quelques secondes.",
    # Home
    "{services} services, {documents} documents and {versions} recorded versions. Each document's history "
    "shows what changed, word by word.":
        "{services} services, {documents} documents et {versions} versions enregistrées. L'historique de chaque "
        "document montre ce qui a changé, mot à mot.",
    "See the latest changes": "Voir les derniers changements",
    "This archive has no versions yet.": "Cette archive ne contient encore aucune version.",
    "no longer tracked": "plus suivi",
    "last change": "dernier changement",
    "no change recorded": "aucun changement enregistré",
    # Home: the collection's metadata.yml
    "Languages": "Langues",
    "Jurisdictions": "Juridictions",
    "since {date}": "depuis le {date}",
    "from {start} to {end}": "du {start} au {end}",
    "Governance": "Gouvernance",
    "Data": "Données",
    "Dataset": "Jeu de données",
    "Declarations repository": "Dépôt des déclarations",
    "Versions repository": "Dépôt des versions",
    "Snapshots repository": "Dépôt des instantanés",
    "Donations": "Dons",
    # Latest changes
    "Filter changes": "Filtrer les changements",
    "Service": "Service",
    "All services": "Tous les services",
    "Document type": "Type de document",
    "All types": "Tous les types",
    "From": "Du",
    "To": "Au",
    "Include technical upgrades": "Inclure les mises à jour techniques",
    "Apply filters": "Filtrer",
    "Latest changes, newest first": "Derniers changements, du plus récent au plus ancien",
    "Date": "Date",
    "Document": "Document",
    "Kind": "Nature",
    "Words": "Mots",
    "Links": "Liens",
    "See the changes": "Voir les changements",
    "No change matches these filters.": "Aucun changement ne correspond à ces filtres.",
    # Search
    "Words to look for": "Mots à chercher",
    "Services and documents": "Services et documents",
    "No service or document name matches.": "Aucun nom de service ou de document ne correspond.",
    "In the current texts": "Dans les textes en vigueur",
    "No current text contains these words.": "Aucun texte en vigueur ne contient ces mots.",
    # Service
    "Service id:": "Identifiant du service :",
    "Latest changes of this service": "Derniers changements de ce service",
    "Documents": "Documents",
    "Last change": "Dernier changement",
    "Versions": "Versions",
    "Tracking": "Suivi",
    "Feeds": "Flux",
    "Declared but not recorded yet:": "Déclarés mais pas encore enregistrés :",
    "since": "depuis",
    "last checked": "dernière vérification",
    # Document
    "Tracked since": "Suivi depuis",
    "Current version": "Version en vigueur",
    "History": "Historique",
    "Technical upgrades (changes of extraction, not of the terms) are shown.":
        "Les mises à jour techniques (changements de l'extraction, pas des conditions) sont affichées.",
    "Technical upgrades (changes of extraction, not of the terms) are hidden.":
        "Les mises à jour techniques (changements de l'extraction, pas des conditions) sont masquées.",
    "Hide technical upgrades": "Masquer les mises à jour techniques",
    "Show technical upgrades": "Afficher les mises à jour techniques",
    "Compare": "Comparer",
    "Size": "Taille",
    "Compare from this version": "Comparer à partir de cette version",
    "Compare to this version": "Comparer jusqu'à cette version",
    "from": "de",
    "to": "à",
    "Markdown": "Markdown",
    "Compare selected versions": "Comparer les versions choisies",
    # Version
    "Version recorded on": "Version enregistrée le",
    "This is the version that was in force on": "C'est la version qui était en vigueur le",
    "See what changed in this version": "Voir ce qui a changé dans cette version",
    "Download the Markdown": "Télécharger le Markdown",
    "Permanent link": "Lien permanent",
    "Previous version": "Version précédente",
    "Next version": "Version suivante",
    "Details and sources": "Détails et sources",
    "Commit": "Commit",
    "Engine version": "Version du moteur",
    "Extracted from": "Extrait de",
    "snapshot": "instantané",
    "external": "externe",
    "not in this archive": "absent de cette archive",
    "unknown": "inconnu",
    "Text of the version": "Texte de la version",
    # Diff
    "Changes": "Changements",
    "Changes to the {document}": "Changements du document « {document} »",
    "From the version of": "De la version du",
    "to the version of": "à la version du",
    "First recorded version:": "Première version enregistrée :",
    "Summary": "Résumé",
    "Sections touched": "Sections modifiées",
    "Before the first heading": "Avant le premier titre",
    "Display of the changes": "Affichage des changements",
    "Inline": "En ligne",
    "Side by side": "Côte à côte",
    "Show only the changes": "Montrer seulement les changements",
    "Show the whole text": "Montrer tout le texte",
    "Previous change of this document": "Changement précédent de ce document",
    "Next change of this document": "Changement suivant de ce document",
    "Keyboard: j / k go to the next / previous changed passage.":
        "Clavier : j / k vont au passage modifié suivant / précédent.",
    "These two versions have exactly the same text.": "Ces deux versions ont exactement le même texte.",
    "Legend:": "Légende :",
    "added text": "texte ajouté",
    "removed text": "texte supprimé",
    "Line before": "Ligne avant",
    "Line after": "Ligne après",
    "Before": "Avant",
    "After": "Après",
    "Change": "Changement",
    "Text": "Texte",
    "Change {n} of {total}": "Changement {n} sur {total}",
    "previous": "précédent",
    "next": "suivant",
    "words added": "mots ajoutés",
    "words removed": "mots supprimés",
    "words added:": "mots ajoutés :",
    "words removed:": "mots supprimés :",
    # Snapshot
    "Snapshot": "Instantané",
    "Archived page": "Page archivée",
    "This is the page as it was fetched, shown in an isolated frame: its scripts do not run and it cannot "
    "load anything.":
        "Voici la page telle qu'elle a été récupérée, dans un cadre isolé : ses scripts ne s'exécutent pas "
        "et elle ne peut rien charger.",
    "Fetched on": "Récupérée le",
    "Address": "Adresse",
    "Source document": "Document source",
    "Format": "Format",
    "Fetcher": "Récupérateur",
    "Versions extracted from this snapshot": "Versions extraites de cet instantané",
    "Download the archived file": "Télécharger le fichier archivé",
    "The page": "La page",
    "Archived page (isolated)": "Page archivée (isolée)",
    "Source": "Source",
    "The source is long; only its beginning is shown. Download the file for all of it.":
        "La source est longue ; seul son début est affiché. Téléchargez le fichier pour l'avoir en entier.",
    # Errors
    "Back to the list of services": "Retour à la liste des services",
    "Page not found": "Page introuvable",
    "Bad request": "Requête incorrecte",
    "Something went wrong": "Une erreur s'est produite",
    # Kinds and states
    "First record": "Premier enregistrement",
    "Change of the terms": "Changement des conditions",
    "Technical upgrade": "Mise à jour technique",
    "Other commit": "Autre commit",
    "Tracked": "Suivi",
    "Failing": "En échec",
    "Blocked": "Bloqué",
    "Unknown": "Inconnu",
    # Records and counts
    "first recorded": "premier enregistrement",
    "first record": "premier enregistrement",
    "and": "et",
    # Tracking failures (document page)
    "Tracking of this document is failing": "Le suivi de ce document est en échec",
    "Tracking of this document is blocked": "Le suivi de ce document est bloqué",
    "Its latest version below may be out of date: the last fetches did not succeed.":
        "Sa dernière version ci-dessous peut être périmée : les dernières récupérations ont échoué.",
    "Failing since": "En échec depuis",
    "Error class": "Classe d'erreur",
    "Last error": "Dernière erreur",
    "Last successful fetch": "Dernière récupération réussie",
    "never": "jamais",
    # Whitespace changes (diff)
    "whitespace only": "espaces seulement",
    "only spaces or line breaks changed (for example, spaces became non-breaking spaces); no word was added or "
    "removed.":
        "seuls des espaces ou des sauts de ligne ont changé (par exemple, des espaces devenus insécables) ; "
        "aucun mot n'a été ajouté ni supprimé.",
    "Changed spaces are drawn as marks: ⍽ non-breaking space, · space, → tab, ↵ line break (point at one to see "
    "which).":
        "Les espaces modifiés sont dessinés : ⍽ espace insécable, · espace, → tabulation, ↵ saut de ligne "
        "(survolez-en un pour savoir lequel).",
    "space": "espace",
    "non-breaking space": "espace insécable",
    "narrow non-breaking space": "espace fine insécable",
    "thin space": "espace fine",
    "tab": "tabulation",
    "line break": "saut de ligne",
    "other space": "autre espace",
    # A date in the future
    "{date} is in the future: no version is known for it yet.":
        "{date} est dans le futur : aucune version n'est encore connue pour cette date.",
    "See the current version": "Voir la version en vigueur",
    "Date in the future": "Date dans le futur",
    # Pictures: a document's timeline, the collection's activity (drawings.py)
    "Each bar is a change: its height above the line is the number of words added, below it the number removed "
    "(logarithmic scale). Point at a bar for its date; click it to see the change.":
        "Chaque barre est un changement : sa hauteur au-dessus de la ligne est le nombre de mots ajoutés, "
        "au-dessous le nombre de mots supprimés (échelle logarithmique). Survolez une barre pour voir sa date ; "
        "cliquez pour voir le changement.",
    "Activity by service and month": "Activité par service et par mois",
    "no word changed (layout only)": "aucun mot changé (mise en page seulement)",
    "One row per service, one column per month; the darker a square, the more changes that month (first records "
    "not counted). The bars on top add up each month: a wave of updates shows as a tall bar and a full column. "
    "Click a square or a bar to list those changes.":
        "Une ligne par service, une colonne par mois ; plus un carré est foncé, plus il y a eu de changements ce "
        "mois-là (premiers enregistrements non comptés). Les barres du haut totalisent chaque mois : une vague de "
        "mises à jour se voit comme une barre haute et une colonne pleine. Cliquez sur un carré ou une barre pour "
        "lister ces changements.",
    "Changes in a month:": "Changements dans le mois :",
    "Only the most recent {n} months are drawn; choose dates to see earlier ones.":
        "Seuls les {n} mois les plus récents sont dessinés ; choisissez des dates pour voir les précédents.",
    "words": "mots",
    # Formatted diff and citation (diff page)
    "Formatted text": "Texte mis en forme",
    "The first recorded version: all of its text is new, so it is shown without marks.":
        "La première version enregistrée : tout son texte est nouveau, il est donc affiché sans marques.",
    "The changes as formatted text": "Les changements en texte mis en forme",
    "Headings, lists, tables and links are shown as they read; a change to a link's address or to the kind of a "
    "block shows the whole old passage removed and the new one added. The source view shows the Markdown exactly.":
        "Titres, listes, tableaux et liens sont affichés comme à la lecture ; un changement de l'adresse d'un lien "
        "ou de la nature d'un bloc montre tout l'ancien passage supprimé et le nouveau ajouté. La vue source montre "
        "le Markdown exact.",
    "Cite this change": "Citer ce changement",
    "recorded on": "enregistrée le",
    "version": "version",
    "{service}, “{document}”: changes between the version recorded on {old_date} (version {old_id}) and the "
    "version recorded on {new_date} (version {new_id}).":
        "{service}, « {document} » : changements entre la version enregistrée le {old_date} (version {old_id}) "
        "et la version enregistrée le {new_date} (version {new_id}).",
    "{service}, “{document}”: first version recorded on {new_date} (version {new_id}).":
        "{service}, « {document} » : première version enregistrée le {new_date} (version {new_id}).",
    "Termshift archive, {link}, consulted on {date}.": "Archive Termshift, {link}, consultée le {date}.",
    "Print or save as PDF": "Imprimer ou enregistrer en PDF",
    # Service status (/status)
    "Service status": "État du service",
    "Status": "État",
    "Generated {date} · version {version}": "Généré le {date} · version {version}",
    "metrics": "métriques",
    "health probe": "sonde de santé",
    "Running now": "En cours",
    "since {since} ({elapsed}), pid {pid} on {host}": "depuis {since} ({elapsed}), pid {pid} sur {host}",
    "since {since} ({elapsed})": "depuis {since} ({elapsed})",
    "Details (remotes, error messages, hosts) are shown to the administrator only.":
        "Les détails (dépôts distants, messages d'erreur, machines) ne sont montrés qu'à l'administrateur.",
    "Last run": "Dernière exécution",
    "started {date}, took {duration}": "commencée le {date}, durée {duration}",
    "no run yet": "aucune exécution pour l'instant",
    "Next run: {job}": "Prochaine exécution : {job}",
    "paused": "en pause",
    "Next run": "Prochaine exécution",
    "the scheduler has never run on this data folder": "le planificateur n'a jamais tourné sur ce dossier de données",
    "{tracked} terms tracked, {failing} failing": "{tracked} documents suivis, {failing} en échec",
    "Terms type": "Type de document",
    "Last success": "Dernier succès",
    "Consecutive failures": "Échecs consécutifs",
    "Blocked pages": "Pages bloquées",
    "Error": "Erreur",
    "Services skipped": "Services ignorés",
    "The last run left out these services: their declaration, history or filters file does not load. Every other "
    "service was tracked.": "La dernière exécution a laissé de côté ces services : leur déclaration, leur historique "
    "ou leur fichier de filtres ne se charge pas. Tous les autres services ont été suivis.",
    "These declarations do not load now: the viewer leaves the services out.":
        "Ces déclarations ne se chargent pas actuellement : le visualiseur laisse ces services de côté.",
    "Webhook deliveries": "Envois des webhooks",
    "Backlog: {count} event(s)": "En attente : {count} événement(s)",
    ", the oldest waiting for {age}": ", le plus ancien attend depuis {age}",
    "No webhook subscriptions.": "Aucun abonnement webhook.",
    "Workers": "Workers",
    "The broker cannot be read:": "Le broker ne peut pas être lu :",
    "Workers alive:": "Workers en vie :",
    "Jobs waiting:": "Tâches en attente :",
    "Jobs in flight:": "Tâches en cours :",
    "Redeliveries:": "Redistributions :",
    "Worker": "Worker",
    "Alive": "En vie",
    "Jobs done": "Tâches faites",
    "yes": "oui",
    "no": "non",
    "Publishing": "Publication",
    "Repository": "Dépôt",
    "Remote": "Dépôt distant",
    "Last push": "Dernier envoi",
    "Outcome": "Résultat",
    "Attempts": "Tentatives",
    "ok": "ok",
    "failed": "échec",
    "No push so far. To publish, set:": "Aucun envoi pour l'instant. Pour publier, réglez :",
    "Recent jobs": "Tâches récentes",
    "Job": "Tâche",
    "Started": "Début",
    "Duration": "Durée",
    "Details": "Détails",
    "No job has run yet.": "Aucune tâche n'a encore tourné.",
}

# Plural forms: (singular, plural) -> (French singular, French plural). French uses the
# singular for 0 and 1.
FRENCH_PLURALS: dict[tuple[str, str], tuple[str, str]] = {
    ("{n} change", "{n} changes"): ("{n} changement", "{n} changements"),
    ("{n} changed passage", "{n} changed passages"): ("{n} passage modifié", "{n} passages modifiés"),
    ("{n} failure in a row", "{n} failures in a row"): ("{n} échec de suite", "{n} échecs de suite"),
    ("{n} unchanged line", "{n} unchanged lines"): ("{n} ligne inchangée", "{n} lignes inchangées"),
    ("{n} word added", "{n} words added"): ("{n} mot ajouté", "{n} mots ajoutés"),
    ("{n} word removed", "{n} words removed"): ("{n} mot supprimé", "{n} mots supprimés"),
    ("{n} word", "{n} words"): ("{n} mot", "{n} mots"),
    ("{n} service", "{n} services"): ("{n} service", "{n} services"),
    ("{n} unchanged paragraph", "{n} unchanged paragraphs"): ("{n} paragraphe inchangé", "{n} paragraphes inchangés"),
    ("{n} version", "{n} versions"): ("{n} version", "{n} versions"),
    ("{n} technical upgrade", "{n} technical upgrades"): ("{n} mise à jour technique", "{n} mises à jour techniques"),
}

KIND_NAMES = {"first": "First record", "change": "Change of the terms", "technical": "Technical upgrade",
              "other": "Other commit"}
STATUS_NAMES = {"ok": "Tracked", "failing": "Failing", "blocked": "Blocked", "unknown": "Unknown"}
ERROR_TITLES = {404: "Page not found", 400: "Bad request", 416: "Date in the future", 500: "Something went wrong"}


def translate(lang: str, text: str, **values) -> str:
    translated = FRENCH.get(text, text) if lang == "fr" else text
    return translated.format(**values) if values else translated


def translate_plural(lang: str, singular: str, plural: str, n: int, **values) -> str:
    if lang == "fr":
        french = FRENCH_PLURALS.get((singular, plural))
        if french:
            chosen = french[0] if abs(n) <= 1 else french[1]
            return chosen.format(n=format_number(n, lang), **values)
    chosen = singular if n == 1 else plural
    return chosen.format(n=format_number(n, lang), **values)


def choose_language() -> str:
    """?lang=, then the cookie, then Accept-Language; English by default."""
    asked = request.args.get("lang")
    if asked in CODES:
        return asked
    remembered = request.cookies.get(COOKIE)
    if remembered in CODES:
        return remembered
    return request.accept_languages.best_match(CODES, default="en") or "en"


def format_number(n: int | None, lang: str = "en") -> str:
    if n is None:
        return "—"
    text = f"{n:,}"
    return text.replace(",", "\u202f") if lang == "fr" else text


def format_signed(n: int, lang: str = "en") -> str:
    sign = "+" if n > 0 else ("−" if n < 0 else "±")
    return sign + format_number(abs(n), lang)


def format_bytes(size: int, lang: str = "en") -> str:
    unit = "o" if lang == "fr" else "B"
    if size < 1024:
        return f"{format_number(size, lang)} {unit}"
    value = f"{size / 1024:.1f}"
    if lang == "fr":
        value = value.replace(".", ",")
    return f"{value} k{unit}"


def format_datetime(moment: datetime) -> str:
    """Unambiguous in every language: `2024-03-18 18:30 UTC`."""
    return moment.isoformat(sep=" ", timespec="minutes")[:16] + " UTC"


def format_date(moment: datetime) -> str:
    return moment.date().isoformat()


def _language_url(code: str) -> str:
    """This page in another language: the same (percent-encoded) path and query, `lang` replaced.

    `request.path` is decoded (`/Café & Co #1?`), so each segment is encoded again the way
    the viewer builds its links (`:` kept, as in dates); a raw `#`, `?` or space would
    otherwise cut or break the URL.
    """
    path = "/".join(quote(part, safe=":") for part in (request.script_root + request.path).split("/"))
    arguments = [(key, value) for key, value in request.args.items(multi=True) if key != "lang"]
    return f"{path}?{urlencode([*arguments, ('lang', code)])}"


def current_language() -> str:
    """The request's language ("en" outside a request). Called for every string a page
    translates, hundreds per page: one lookup through Flask's `g`, not two."""
    try:
        return g.lang
    except (AttributeError, RuntimeError):  # no language chosen yet; no app context
        return "en"


def register(app: Flask) -> None:
    """Install the language choice and the template globals (once per app: several
    blueprints may ask for them)."""
    if app.extensions.get("termshift.i18n"):
        return
    app.extensions["termshift.i18n"] = True

    @app.before_request
    def _pick_language() -> None:
        g.lang = choose_language()

    @app.after_request
    def _remember_language(response: Response) -> Response:
        asked = request.args.get("lang")
        if asked in CODES:
            response.set_cookie(COOKIE, asked, max_age=365 * 86400, samesite="Lax", httponly=True)
        response.vary.add("Accept-Language")
        response.vary.add("Cookie")
        if "Content-Language" not in response.headers and response.mimetype == "text/html":
            response.headers["Content-Language"] = getattr(g, "lang", "en")
        return response

    # Globals (not a context processor) so that imported macros see them too; each reads
    # the request's language when called.
    app.jinja_env.globals.update({
        "languages": LANGUAGES,
        "_": lambda text, **values: translate(current_language(), text, **values),
        "_n": lambda singular, plural, n, **values: translate_plural(current_language(), singular, plural, n,
                                                                     **values),
        "language_url": _language_url,
        "format_number": lambda n: format_number(n, current_language()),
        "format_bytes": lambda n: format_bytes(n, current_language()),
        "format_datetime": format_datetime,
        "format_date": format_date,
        "status_name": lambda state: translate(current_language(), STATUS_NAMES.get(state, "Unknown")),
        "error_title": lambda status, default: translate(current_language(), ERROR_TITLES.get(status, default)),
        "urls": urls,
        "iso": urls.iso,
    })

    @app.context_processor
    def _language() -> dict:
        return {"lang": current_language()}
