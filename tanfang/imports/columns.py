"""The columns of the elders file: the one definition the reader, the xlsx template and
docs/import.md are all made from.

Every column has a Chinese header (what partners' spreadsheets use) and an English code; a
file may use either. Children are described in repeated groups of columns, 子女1姓名 …
子女1收养, 子女2姓名 …; the template offers ``TEMPLATE_CHILD_GROUPS`` groups and the reader
accepts as many as a file has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from tanfang.imports import values as v

TEMPLATE_CHILD_GROUPS = 4
MAX_CHILD_GROUPS = 20

GENDER = {"男": "male", "女": "female", "male": "male", "female": "female"}
SPOUSE_STATUS = {
    "无": "none",
    "健在": "alive",
    "已故": "deceased",
    "none": "none",
    "alive": "alive",
    "deceased": "deceased",
}
DISABILITY_STATUS = {"无": "none", "有": "certified", "none": "none", "certified": "certified"}
DISABILITY_TYPE = {
    "视力": "visual",
    "听力": "hearing",
    "言语": "speech",
    "肢体": "physical",
    "智力": "intellectual",
    "精神": "mental",
    "多重": "multiple",
    "视力残疾": "visual",
    "听力残疾": "hearing",
    "言语残疾": "speech",
    "肢体残疾": "physical",
    "智力残疾": "intellectual",
    "精神残疾": "mental",
    "多重残疾": "multiple",
    "visual": "visual",
    "hearing": "hearing",
    "speech": "speech",
    "physical": "physical",
    "intellectual": "intellectual",
    "mental": "mental",
    "multiple": "multiple",
}
ASSESSMENT_SCHEME = {
    "北京": "beijing",
    "国标": "gbt42195",
    "GB/T42195": "gbt42195",
    "GB/T42195-2022": "gbt42195",
    "beijing": "beijing",
    "gbt42195": "gbt42195",
}
CONTRACT_KIND = {
    "驿站": "station",
    "家庭养老床位": "home_care_bed",
    "社区养老服务驿站": "station",
    "station": "station",
    "home_care_bed": "home_care_bed",
}
RECIPIENT_GROUP = {
    "兜底保障": "safeguard",
    "重点服务": "key_service",
    "其他": "other",
    "兜底保障对象": "safeguard",
    "重点服务对象": "key_service",
    "safeguard": "safeguard",
    "key_service": "key_service",
    "other": "other",
}
AWAY_REASON = {
    "务工": "work",
    "经商": "business",
    "上学": "study",
    "其他": "other",
    "work": "work",
    "business": "business",
    "study": "study",
    "other": "other",
}
LIFE_STATUS = {
    "正常": "active",
    "迁出": "moved_away",
    "住院": "in_hospital",
    "入住机构": "in_institution",
    "死亡": "deceased",
    "在世": "active",
    "健在": "active",
    "已故": "deceased",
    "去世": "deceased",
    "active": "active",
    "moved_away": "moved_away",
    "in_hospital": "in_hospital",
    "in_institution": "in_institution",
    "deceased": "deceased",
}
CONTACT_RELATION = {
    "子女": "child",
    "配偶": "spouse",
    "其他亲属": "relative",
    "邻居": "neighbour",
    "社区工作者": "community",
    "其他": "other",
    "儿子": "child",
    "女儿": "child",
    "亲属": "relative",
    "child": "child",
    "spouse": "spouse",
    "relative": "relative",
    "neighbour": "neighbour",
    "community": "community",
    "other": "other",
}
HOUSEHOLD_RELATION = {
    "配偶": "spouse",
    "子女": "child",
    "子女配偶": "child_in_law",
    "孙子女": "grandchild",
    "兄弟姐妹": "sibling",
    "其他亲属": "relative",
    "护工": "caregiver",
    "其他": "other",
    "儿子": "child",
    "女儿": "child",
    "儿媳": "child_in_law",
    "女婿": "child_in_law",
    "孙子": "grandchild",
    "孙女": "grandchild",
    "外孙": "grandchild",
    "外孙女": "grandchild",
    "保姆": "caregiver",
    "亲属": "relative",
    "spouse": "spouse",
    "child": "child",
    "child_in_law": "child_in_law",
    "grandchild": "grandchild",
    "sibling": "sibling",
    "relative": "relative",
    "caregiver": "caregiver",
    "other": "other",
}
YES_NO = ("是", "否")
GRADE_TEXT = _("1 to 4 (一级 to 四级 also work)")
YES_NO_TEXT = _("是 or 否 (Y/N, 1/0, true/false also work)")
DATE_TEXT = _("a date, e.g. 2024-06-30 (2024/6/30, 20240630, 2024年6月30日 also work)")


@dataclass(frozen=True)
class Column:
    """One column: its headers, what it means, what it accepts, and how to read a cell."""

    code: str
    header: str
    section: str | Promise
    meaning: str | Promise
    allowed: str | Promise
    example: str
    parse: v.Parser
    offered: tuple[str, ...] = ()  # values for a drop-down list in the template
    as_text: bool = False  # identifiers and codes: a text cell, never a figure
    aliases: tuple[str, ...] = ()
    child_group: int = 0  # 1, 2, ... for the repeated columns of a child
    width: int = 12


def _choices(tokens: Mapping[str, str]) -> tuple[tuple[str, ...], str]:
    offered = v.offered_tokens(tokens)
    return offered, " / ".join(offered)


def _col(
    code: str,
    header: str,
    section: str | Promise,
    meaning: str | Promise,
    allowed: str | Promise,
    example: str,
    parse: v.Parser,
    **kw: Any,
) -> Column:
    return Column(code, header, section, meaning, allowed, example, parse, **kw)


def _enum(
    code: str,
    header: str,
    section: str | Promise,
    meaning: str | Promise,
    tokens: Mapping[str, str],
    example: str,
    **kw: Any,
) -> Column:
    offered, allowed = _choices(tokens)
    return Column(
        code, header, section, meaning, allowed, example, v.choice(tokens), offered=offered, **kw
    )


def _yes_no(
    code: str, header: str, section: str | Promise, meaning: str | Promise, example: str
) -> Column:
    return Column(code, header, section, meaning, YES_NO_TEXT, example, v.boolean, offered=YES_NO)


IDENTITY = _("Identity")
PLACE = _("Place")
FAMILY = _("Family")
CHILDREN = _("Children (one group of columns per child)")
CAPABILITY = _("Capability assessment")
DISABILITY = _("Disability certificate")
SUPPORT = _("Support and contract")
WILLINGNESS = _("Willingness to receive visits")
CONTACT = _("First contact")
STATUS = _("Life status")

ELDER_COLUMNS: tuple[Column, ...] = (
    _col(
        "name",
        "姓名",
        IDENTITY,
        _("Name; required for an elder not yet in the registry."),
        _("text, at most 64 characters"),
        "王秀兰",
        v.text(64),
    ),
    _enum(
        "gender",
        "性别",
        IDENTITY,
        _("Gender; when blank for a new elder it is read from the ID number."),
        GENDER,
        "女",
        width=6,
    ),
    _col(
        "id_number",
        "公民身份号码",
        IDENTITY,
        _(
            "Resident ID number (18 characters); required on every row. Rows with the same "
            "number are the same elder and are merged."
        ),
        _("18 characters, last one a digit or X"),
        "110101194005019006",
        v.identifier,
        as_text=True,
        aliases=("身份证号", "身份证号码", "公民身份证号码"),
        width=21,
    ),
    _col(
        "birth_date",
        "出生日期",
        IDENTITY,
        _("Birth date; must agree with the ID number."),
        DATE_TEXT,
        "1940-05-01",
        v.date(),
    ),
    _col(
        "phone",
        "联系电话",
        IDENTITY,
        _("The elder's own phone."),
        _("an 11-digit mobile number or a landline with its area code"),
        "13800138000",
        v.phone,
        as_text=True,
        aliases=("电话", "手机号码"),
        width=14,
    ),
    _col(
        "community_code",
        "社区代码",
        PLACE,
        _(
            "12-digit code of the residents' or villagers' committee the elder belongs to; "
            "required for a new elder."
        ),
        _("12 digits, a community of the registry"),
        "110101001001",
        v.digits(12),
        as_text=True,
        width=15,
    ),
    _col(
        "grid_code",
        "网格代码",
        PLACE,
        _("15-digit grid code inside that community."),
        _("15 digits, a grid of the registry"),
        "110101001001001",
        v.digits(15),
        as_text=True,
        width=18,
    ),
    _col(
        "address",
        "居住地址",
        PLACE,
        _("Address of usual residence."),
        _("text, at most 200 characters"),
        "东城区示例街道1号楼2单元301",
        v.text(200),
        aliases=("地址", "现居住地址"),
        width=30,
    ),
    _enum("spouse_status", "配偶状况", FAMILY, _("Spouse."), SPOUSE_STATUS, "已故"),
    _yes_no("spouse_lives_with", "与配偶同住", FAMILY, _("Lives with the spouse."), "否"),
    _col(
        "children_count",
        "子女数",
        FAMILY,
        _(
            "Number of children, living or not. 0 records that the elder has no children; when "
            "given it must equal the number of child groups filled in."
        ),
        _("0 to 20"),
        "1",
        v.integer(0, MAX_CHILD_GROUPS),
        width=8,
    ),
    _col(
        "household",
        "同住人员",
        FAMILY,
        _(
            "Who lives with the elder (the elder not counted), as relation:age separated by "
            "semicolons; 无 when the elder lives alone."
        ),
        format_lazy(
            _("relations: {relations}; ages 0 to 130"),
            relations=" / ".join(v.offered_tokens(HOUSEHOLD_RELATION)),
        ),
        "配偶:78;孙子女:15",
        v.household(HOUSEHOLD_RELATION),
        width=20,
    ),
    _yes_no(
        "relatives_same_subdistrict",
        "同街道有其他亲属",
        FAMILY,
        _("Other relatives live in the same subdistrict (street or township)."),
        "否",
    ),
    _yes_no(
        "daily_companionship",
        "日常有陪伴照料",
        FAMILY,
        _("Someone keeps the elder company and cares for them daily."),
        "否",
    ),
    _col(
        "assessment_level",
        "能力评估等级",
        CAPABILITY,
        _("Level of the latest capability assessment, in the scheme of the next column."),
        _(
            "北京: 1 severe, 2 moderate, 3 mild, 0 not impaired; 国标 (GB/T 42195-2022): 0 "
            "intact … 4 total"
        ),
        "2",
        v.integer(0, 4, grades=True),
        width=8,
    ),
    _enum(
        "assessment_scheme",
        "评估标准",
        CAPABILITY,
        _("The scheme the level is given in; required with a level."),
        ASSESSMENT_SCHEME,
        "北京",
    ),
    _col(
        "assessment_date",
        "评估日期",
        CAPABILITY,
        _("Date of the assessment; required with a level."),
        DATE_TEXT,
        "2025-03-10",
        v.date(),
    ),
    _enum(
        "disability_status",
        "残疾证",
        DISABILITY,
        _("Holds a disability certificate."),
        DISABILITY_STATUS,
        "有",
        width=8,
    ),
    _col(
        "disability_grade",
        "残疾等级",
        DISABILITY,
        _("Grade on the certificate."),
        GRADE_TEXT,
        "2",
        v.integer(1, 4, grades=True),
        offered=("一级", "二级", "三级", "四级"),
        width=8,
    ),
    _enum(
        "disability_type",
        "残疾类别",
        DISABILITY,
        _("Kind of disability on the certificate."),
        DISABILITY_TYPE,
        "肢体",
        width=8,
    ),
    _yes_no(
        "extremely_poor", "特困人员", SUPPORT, _("An extremely poor elder (城乡特困人员)."), "否"
    ),
    _yes_no(
        "dispersed_supported",
        "分散供养",
        SUPPORT,
        _("Extremely poor and supported at home (分散供养)."),
        "否",
    ),
    _enum(
        "contract_kind",
        "签约类型",
        SUPPORT,
        _("A care contract: with a community elder-care station or a home care bed."),
        CONTRACT_KIND,
        "驿站",
    ),
    _col(
        "contract_provider",
        "签约机构",
        SUPPORT,
        _("The provider under contract; required with a contract."),
        _("text, at most 100 characters"),
        "示例社区养老服务驿站",
        v.text(100),
        width=20,
    ),
    _enum(
        "contract_group",
        "对象类别",
        SUPPORT,
        _("The recipient group of the contract; required with a contract."),
        RECIPIENT_GROUP,
        "兜底保障",
    ),
    _col(
        "contract_date",
        "签约日期",
        SUPPORT,
        _("Date the contract starts; required with a contract."),
        DATE_TEXT,
        "2024-07-01",
        v.date(),
    ),
    _col(
        "contract_end_date",
        "签约到期日期",
        SUPPORT,
        _("Date the contract ends, if known."),
        DATE_TEXT,
        "2026-06-30",
        v.date(future=True),
    ),
    _yes_no(
        "willing",
        "愿意接受探访",
        WILLINGNESS,
        _("The elder's recorded choice to receive visits and care."),
        "是",
    ),
    _col(
        "willingness_date",
        "意愿登记日期",
        WILLINGNESS,
        _("When the choice was recorded; required with the choice."),
        DATE_TEXT,
        "2024-05-20",
        v.date(),
    ),
    _col(
        "willingness_recorder",
        "意愿登记人",
        WILLINGNESS,
        _("Who recorded the choice; required with the choice."),
        _("text, at most 64 characters"),
        "李红",
        v.text(64),
    ),
    _col(
        "first_contact_name",
        "第一联系人姓名",
        CONTACT,
        _("The person told first about the elder; name, relation and phone go together."),
        _("text, at most 64 characters"),
        "张伟",
        v.text(64),
    ),
    _enum(
        "first_contact_relation",
        "第一联系人关系",
        CONTACT,
        _("Relation to the elder."),
        CONTACT_RELATION,
        "子女",
    ),
    _col(
        "first_contact_phone",
        "第一联系人电话",
        CONTACT,
        _("Phone of the first contact."),
        _("an 11-digit mobile number or a landline with its area code"),
        "13900139000",
        v.phone,
        as_text=True,
        width=14,
    ),
    _yes_no(
        "first_contact_designated",
        "第一联系人由社区指定",
        CONTACT,
        _("The community designated this first contact (no child can be); blank means 否."),
        "否",
    ),
    _enum(
        "life_status",
        "生存状态",
        STATUS,
        _("Whether the elder still lives here."),
        LIFE_STATUS,
        "正常",
    ),
)

# The repeated columns of child N; ``{n}`` is the child's number.
CHILD_COLUMNS: tuple[Column, ...] = (
    _col(
        "child{n}_name",
        "子女{n}姓名",
        CHILDREN,
        _("Child's name."),
        _("text, at most 64 characters"),
        "张伟",
        v.text(64),
    ),
    _yes_no("child{n}_alive", "子女{n}是否在世", CHILDREN, _("The child is alive."), "是"),
    _col(
        "child{n}_birth_year",
        "子女{n}出生年份",
        CHILDREN,
        _("Year the child was born."),
        _("a year from 1900 to this year"),
        "1968",
        v.year,
        width=8,
    ),
    _yes_no(
        "child{n}_lives_with", "子女{n}同住", CHILDREN, _("The child lives with the elder."), "否"
    ),
    _yes_no(
        "child{n}_same_subdistrict",
        "子女{n}同街道",
        CHILDREN,
        _("The child lives in the same subdistrict (street or township)."),
        "是",
    ),
    _col(
        "child{n}_away_months",
        "子女{n}离开月数",
        CHILDREN,
        _("How many months the child has been away from the district (working, in business ...)."),
        _("0 to 1200"),
        "0",
        v.integer(0, 1200),
        width=8,
    ),
    _enum(
        "child{n}_away_reason",
        "子女{n}离开原因",
        CHILDREN,
        _("Why the child is away."),
        AWAY_REASON,
        "务工",
    ),
    _yes_no(
        "child{n}_can_support",
        "子女{n}有赡养能力",
        CHILDREN,
        _("The child is able to support the elder."),
        "是",
    ),
    _col(
        "child{n}_disability_grade",
        "子女{n}残疾等级",
        CHILDREN,
        _("Grade of the child's disability certificate; blank or 无 when none."),
        _("1 to 4, or 无"),
        "",
        v.optional_grade,
        width=8,
    ),
    _yes_no("child{n}_adopted", "子女{n}收养", CHILDREN, _("The child was adopted."), "否"),
)

CHILD_FIELD_OF = {
    col.code.removeprefix("child{n}_"): col for col in CHILD_COLUMNS
}  # field name of ChildRecord → template column


def child_column(template: Column, n: int) -> Column:
    return replace(
        template,
        code=template.code.format(n=n),
        header=template.header.format(n=n),
        child_group=n,
        example=template.example if n == 1 else "",
    )


def template_columns(child_groups: int = TEMPLATE_CHILD_GROUPS) -> list[Column]:
    """The columns of the template, in order: children's groups after 子女数."""
    out: list[Column] = []
    for column in ELDER_COLUMNS:
        out.append(column)
        if column.code == "children_count":
            for n in range(1, child_groups + 1):
                out.extend(child_column(template, n) for template in CHILD_COLUMNS)
    return out


@dataclass
class HeaderIndex:
    """Finds the column a header names: Chinese header, English code, or an alias."""

    by_name: dict[str, Column] = field(default_factory=dict)

    @classmethod
    def build(cls) -> HeaderIndex:
        index = cls()
        for column in ELDER_COLUMNS:
            for name in (column.header, column.code, *column.aliases):
                index.by_name[_normal(name)] = column
        return index

    def find(self, header: str) -> Column | None:
        name = _normal(header)
        if name in self.by_name:
            return self.by_name[name]
        match = _CHILD_HEADER.fullmatch(name)
        if match is None:
            return None
        n = int(match.group("n"))
        if not 1 <= n <= MAX_CHILD_GROUPS:
            return None
        for template in CHILD_COLUMNS:
            suffix_zh = template.header.format(n="")[2:]
            suffix_en = template.code.format(n="")[5:]
            if match.group("rest") in (suffix_zh, suffix_en):
                return child_column(template, n)
        return None


_CHILD_HEADER = re.compile(r"(?:子女|child)(?P<n>\d+)(?P<rest>.+)")

# Columns partners' sheets often carry that say nothing about the elder.
IGNORED_HEADERS = frozenset({"序号", "编号", "备注", "no", "note", "notes", "remarks"})


def _normal(header: str) -> str:
    """Headers compare without spaces, a required-mark ``*`` or （必填）, in lower case."""
    name = re.sub(r"\s+", "", header or "").lower()
    name = name.strip("*＊")
    return re.sub(r"[（(]必填[）)]$", "", name)
