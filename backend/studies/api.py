"""Researcher API (v1): list, create and update studies from JSON, build their task lists, move
them through their states and read their progress. Token or session authentication; a study
that is not the caller's (owner or collaborator) is a 404. Views validate; services write.
"""

from __future__ import annotations

import copy
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.errors import ApiError
from backend.core.strictfields import StrictModelSerializer
from backend.stimuli import access
from backend.stimuli.models import UnitSet
from backend.studies import links, presets, services
from backend.studies import permissions as study_permissions
from backend.studies.builder import BuildRefused, Refused
from backend.studies.models import Condition, Study
from backend.studies.readiness import LaunchRefused
from backend.studies.validation import exclusion_rules_from_json

RELATIONS = ("unit_sets", "collaborators", "catch_units")


class IsResearcher(permissions.BasePermission):
    message = "Only researcher (staff) accounts may use the researcher API."

    def has_permission(self, request: Any, view: Any) -> bool:
        return study_permissions.is_researcher(request.user)


class ConditionSerializer(StrictModelSerializer):
    class Meta:
        model = Condition
        fields = ["name", "explanation", "n_references", "sides", "query_selection",
                  "visualization_preset", "unit_group", "exclusion_rules",
                  "shows_description", "reference_band", "query_band"]  # fmt: skip


class CatalogueRelatedField(serializers.PrimaryKeyRelatedField):  # type: ignore[type-arg]
    """An id of a network, image set, unit set or unit the caller may see; any other id is
    refused as if it did not exist (backend.stimuli.access)."""

    def get_queryset(self) -> Any:
        rows = super().get_queryset()
        assert rows is not None, "declared with a queryset"
        request = self.context.get("request")
        scope = access.visible(rows.model, getattr(request, "user", None))
        return rows if scope is None else rows.filter(pk__in=scope.values("pk"))


class StudySerializer(StrictModelSerializer):
    serializer_related_field = CatalogueRelatedField
    conditions = ConditionSerializer(many=True, required=False)
    apply_preset = serializers.ChoiceField(
        choices=list(presets.PRESETS), required=False, write_only=True
    )
    unit_sets = CatalogueRelatedField(queryset=UnitSet.objects.all(), many=True, required=False)
    collaborators: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", many=True, required=False, read_only=True
    )
    owner: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    links = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Study
        exclude = ["id", "excluded_studies"]
        read_only_fields = ["state", "preset", "pilot_token", "launched_at", "built_at",
                            "build_report", "created_at", "updated_at"]  # fmt: skip

    def get_links(self, study: Study) -> dict[str, str]:
        return links.recruitment_links(study)

    def get_progress(self, study: Study) -> dict[str, int]:
        return services.progress(study)

    def validate_exclusion_rules(self, value: Any) -> Any:
        try:
            exclusion_rules_from_json(value)
        except ValueError as err:
            raise serializers.ValidationError(str(err)) from None
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Run the model's own checks (ranges, consistency, what may change once live), and
        refuse catalogue items the study's owner may not see (backend.stimuli.access)."""
        owner = self.instance.owner if self.instance is not None else self.context["request"].user
        try:
            access.check_study_items(
                owner, image_set=attrs.get("image_set"),
                unit_sets=attrs.get("unit_sets"), catch_units=attrs.get("catch_units"),
            )  # fmt: skip
        except ValidationError as err:
            raise serializers.ValidationError(err.message_dict) from None
        if self.instance is None:
            return attrs  # services.do_create_study runs the same checks
        study = copy.copy(self.instance)
        for name, value in attrs.items():
            if name not in {"conditions", "apply_preset", *RELATIONS}:
                setattr(study, name, value)
        try:
            study.clean()
        except ValidationError as err:
            raise serializers.ValidationError(err.message_dict) from None
        return attrs


def _split(
    data: dict[str, Any],
) -> tuple[dict[str, Any], str, list[dict[str, Any]] | None, dict[str, Any]]:
    data = dict(data)
    preset = data.pop("apply_preset", "")
    conditions = data.pop("conditions", None)
    relations = {name: data.pop(name) for name in RELATIONS if name in data}
    return data, preset, conditions, relations


def _researcher(request: Any) -> User:
    assert isinstance(request.user, User), "IsResearcher lets only signed-in users through"
    return request.user


def _refusal(err: Exception) -> ApiError:
    if isinstance(err, LaunchRefused):
        missing = [item.payload() for item in err.missing]
        return ApiError("launch_refused", err.message, status.HTTP_409_CONFLICT, missing=missing)
    if isinstance(err, BuildRefused):
        return ApiError(
            "design_refused", err.message, status.HTTP_409_CONFLICT, missing=err.missing
        )
    if isinstance(err, Refused):
        return ApiError("refused", err.message, status.HTTP_409_CONFLICT)
    assert isinstance(err, ValidationError)
    return ApiError("invalid", " ".join(err.messages), status.HTTP_400_BAD_REQUEST)


class StudyList(generics.ListCreateAPIView):  # type: ignore[type-arg]
    """Your studies (owned or shared with you); POST creates one, optionally from a preset."""

    serializer_class = StudySerializer
    permission_classes = [permissions.IsAuthenticated, IsResearcher]

    def get_queryset(self) -> Any:
        return study_permissions.visible_studies(self.request.user).order_by("-created_at")

    def perform_create(self, serializer: Any) -> None:
        fields, preset, conditions, relations = _split(serializer.validated_data)
        try:
            with transaction.atomic():
                study = services.do_create_study(
                    _researcher(self.request), fields, preset, conditions
                )
                services.do_set_relations(study, **relations)
        except (Refused, ValidationError) as err:
            raise _refusal(err) from None
        serializer.instance = study


class StudyDetail(generics.RetrieveUpdateAPIView):  # type: ignore[type-arg]
    """One study; PATCH changes settings (only a few once live), conditions and units."""

    serializer_class = StudySerializer
    permission_classes = [permissions.IsAuthenticated, IsResearcher]
    lookup_field = "slug"

    def get_queryset(self) -> Any:
        return study_permissions.visible_studies(self.request.user)

    def perform_update(self, serializer: Any) -> None:
        fields, preset, conditions, relations = _split(serializer.validated_data)
        study = serializer.instance
        try:
            with transaction.atomic():
                if preset:
                    services.do_apply_preset(study, preset)
                services.do_update_study(study, fields, conditions)
                services.do_set_relations(study, **relations)
        except (Refused, ValidationError) as err:
            raise _refusal(err) from None


class MissingSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField(help_text="consent, instructions, practice, …")
    message = serializers.CharField()
    field = serializers.CharField(help_text="the study field that fills it")
    waivable = serializers.BooleanField(help_text="whether a *_waived field may waive it")


class BuildReportSerializer(serializers.Serializer):  # type: ignore[type-arg]
    task_lists = serializers.IntegerField()
    trials = serializers.IntegerField()
    trials_per_list = serializers.IntegerField()
    catch_trials_per_list = serializers.IntegerField()
    units = serializers.IntegerField()
    practice_trials = serializers.IntegerField()
    missing = MissingSerializer(many=True, help_text="what launching still needs")


class ProgressSerializer(serializers.Serializer):  # type: ignore[type-arg]
    state = serializers.CharField()
    task_lists = serializers.IntegerField()
    retired_task_lists = serializers.IntegerField()
    sessions_started = serializers.IntegerField()
    sessions_completed = serializers.IntegerField()
    valid_results = serializers.IntegerField()
    target_valid_responses_per_unit = serializers.IntegerField()


class TransitionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    action = serializers.ChoiceField(choices=list(services.TRANSITIONS))


class StudyView(APIView):
    permission_classes = [permissions.IsAuthenticated, IsResearcher]

    def study(self, slug: str) -> Study:
        return study_permissions.get_study_or_404(self.request.user, slug=slug)


class BuildTaskLists(StudyView):
    @extend_schema(request=None, responses={200: BuildReportSerializer})
    def post(self, request: Request, slug: str) -> Response:
        """Build (or rebuild) the task lists; 409 with what is missing when refused."""
        study = self.study(slug)
        try:
            report = services.do_build_task_lists(study)
        except (Refused, ValidationError) as err:
            raise _refusal(err) from None
        return Response(report)


class ChangeState(StudyView):
    @extend_schema(request=TransitionSerializer, responses={200: StudySerializer})
    def post(self, request: Request, slug: str) -> Response:
        """pilot, edit (back to draft), launch (or resume), pause, close; launching refuses
        (409 launch_refused, with `missing`) while a text or the practice is missing."""
        study = self.study(slug)
        serializer = TransitionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            study = services.do_change_state(study, serializer.validated_data["action"])
        except Refused as err:
            raise _refusal(err) from None
        return Response(StudySerializer(study).data)


class Progress(StudyView):
    @extend_schema(responses={200: ProgressSerializer})
    def get(self, request: Request, slug: str) -> Response:
        """Sessions and valid results so far, over the study's task lists."""
        study = self.study(slug)
        target = study.target_valid_responses_per_unit
        body = {
            "state": study.state,
            **services.progress(study),
            "target_valid_responses_per_unit": target,
        }
        return Response(body)
