"""``detal push | pull``: the batch that is out, to and from a running Label Studio server.

Thin wrappers over :mod:`detal.labelstudio`. The token is read from
``$LABEL_STUDIO_API_KEY`` or ``--token-file FILE``, never from an argument
that ``ps`` would show.
"""

from __future__ import annotations

import argparse

_TOKEN_HELP = ("file whose first line is the API token (legacy token or personal access token); "
               "default: $LABEL_STUDIO_API_KEY")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push",
        allow_abbrev=False,  # --token must not be taken for --token-file
        help="push the batch that is out to Label Studio, with pre-labels and uncertainty",
        description=(
            "Create (or reuse) a Label Studio project with the project's classes, upload the "
            "images that are out and import them as tasks with the cycle's pre-labels as "
            "predictions (model_version cycle-<k>, score 1 - uncertainty: sort by prediction "
            "score to see the most uncertain first). Images pushed before are skipped."
        ),
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--label-studio", dest="url", metavar="URL",
                   help="server URL, e.g. http://localhost:8080 (default: the server pushed to "
                        "before, then $LABEL_STUDIO_URL)")
    p.add_argument("--token-file", metavar="FILE", help=_TOKEN_HELP)
    p.add_argument("--ls-project", type=int, metavar="ID",
                   help="push into this existing Label Studio project (its labels must be the "
                        "project's classes, in order) instead of creating one")
    p.add_argument("--relink", action="store_true",
                   help="forget the linked Label Studio project and its task ids (after it was "
                        "deleted, or to move to another server)")
    p.set_defaults(func=run_push)

    p = sub.add_parser(
        "pull",
        allow_abbrev=False,
        help="import the annotations made in Label Studio (validated, all or nothing)",
        description=(
            "Fetch the annotations of the pushed tasks whose images are out, map labels by "
            "class name, and import them like detal import. Unannotated tasks stay out. Of "
            "several annotations on one task, one marked ground truth counts, else the most "
            "recently updated; skipped annotations never count."
        ),
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--label-studio", dest="url", metavar="URL",
                   help="server URL (default: the one the project was pushed to)")
    p.add_argument("--token-file", metavar="FILE", help=_TOKEN_HELP)
    p.add_argument("--overwrite", action="store_true",
                   help="also pull tasks of images already labeled, replacing changed labels "
                        "(old files kept in labels/.replaced)")
    p.set_defaults(func=run_pull)


def run_push(args: argparse.Namespace) -> int:
    from detal.labelstudio import push_batch

    r = push_batch(args.project, args.url, token_file=args.token_file,
                   ls_project=args.ls_project, relink=args.relink)
    made = "created" if r.created else "existing"
    adopted = f" ({r.n_adopted} found on the server)" if r.n_adopted else ""
    print(f"pushed {r.n_pushed} images ({r.n_predictions} with pre-labels) to {made} Label Studio "
          f"project {r.ls_project} at {r.url}; {r.n_present} already there{adopted}")
    print(f"annotate at {r.url}/projects/{r.ls_project}/data, then: detal pull {args.project}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from detal.labelstudio import pull_labels

    r = pull_labels(args.project, args.url, token_file=args.token_file, overwrite=args.overwrite)
    missing = f", {r.n_missing} tasks missing on the server" if r.n_missing else ""
    print(f"imported {r.n_labeled} labels ({r.n_unchanged} unchanged, {r.n_overwritten} "
          f"overwritten) from Label Studio project {r.ls_project}; {r.n_unannotated} tasks "
          f"unannotated{missing}; {r.remaining} images still out")
    return 0
