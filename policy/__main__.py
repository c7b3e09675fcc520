"""The kubeadm-cluster policy pack: `pulumi preview -s aws --policy-pack policy`.

Only wiring: every rule lives in validators.py as a plain function (tested without a server).
Constructing the PolicyPack below starts the analyzer's gRPC server and blocks, so nothing may
import this module; Pulumi runs it as a program.
"""

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

# Pulumi runs this file with runpy from policy/: make the repository root importable so the
# rules load as the `policy` package (they share policy/references.py with the program).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from policy import validators

UNKNOWN_ERRORS = (UnknownValueError,)


def enforcement(rule: validators.Rule) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY


def config_schema(rule: validators.Rule) -> PolicyConfigSchema | None:
    if not rule.config:
        return None
    return PolicyConfigSchema(properties={
        key: {"type": kind, "default": default}
        for key, (_, kind, default) in rule.config.items()
    })


def resource_policy(rule: validators.Rule) -> Policy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        props = validators.plain(args.props, UNKNOWN_ERRORS)
        secret_outputs = list(args.opts.additional_secret_outputs or [])
        for text in validators.check_resource(rule, args.resource_type, props, args.name,
                                              secret_outputs, args.get_config()):
            report_violation(text, None)

    return ResourceValidationPolicy(
        name=rule.name, description=rule.description, validate=validate,
        enforcement_level=enforcement(rule), config_schema=config_schema(rule),
    )


def dependencies(resource: Any) -> Mapping[str, tuple[str, ...]]:
    return {key: tuple(dep.urn for dep in deps)
            for key, deps in (resource.property_dependencies or {}).items()}


def stack_policy(rule: validators.Rule) -> Policy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [
            validators.Resource(
                type=r.resource_type, name=r.name,
                props=validators.plain(r.props, UNKNOWN_ERRORS), urn=r.urn,
                secret_outputs=tuple(r.opts.additional_secret_outputs or ()),
                property_dependencies=dependencies(r),
            )
            for r in args.resources
        ]
        for violation in validators.check_stack(rule, resources, args.get_config()):
            report_violation(violation.message, violation.urn)

    return StackValidationPolicy(
        name=rule.name, description=rule.description, validate=validate,
        enforcement_level=enforcement(rule), config_schema=config_schema(rule),
    )


def policies() -> list[Policy]:
    return [stack_policy(rule) if rule.stack_check is not None else resource_policy(rule)
            for rule in validators.RULES]


PolicyPack(
    name="kubeadm-cluster-security",
    policies=policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Security defaults of the kubeadm-cluster project; advisory rules report "
    "deliberate opt-outs (public workers, wide admin networks, exposed apps, added "
    "capabilities) without failing.",
)
