"""Realistic, reproducible sample records for any resource, from its Avro schema alone.

Nothing here knows a particular catalog: values are chosen from the field's
Avro type and logical type, its name (``mother_id_number``, ``company_name``,
``birth_weight_grams`` ...), the record's name and namespace, and, for field
names that say nothing (pinyin abbreviations such as ``xm``), the Chinese
words of the field's ``doc``. A resource added tomorrow gets sensible data
without a code change; a field nothing recognises still gets a valid value.

Records come back in fastavro's Python form (``datetime.date``, aware
``datetime`` in :data:`~exchange.avro.jsoncodec.CHINA_TZ`, ``Decimal`` at the
schema's scale, ``bytes``) and survive :func:`exchange.avro.jsoncodec.dumps`
followed by :func:`exchange.avro.jsoncodec.from_json` unchanged.

Reproducibility: every value is drawn from its own random stream, derived from
``(seed, schema full name, field path, record index)``. The same seed gives the
same records, and
adding a field to a schema leaves the values of the other fields unchanged
(except when the new field joins a person, see below).

Consistency inside one record:

* Fields about the same person are grouped by their prefix: ``mother_name``,
  ``mother_id_number`` and ``mother_birth_date`` share one birth date and one
  gender; unprefixed fields (``name``, ``id_number``, ``gender``,
  ``birth_date``) and ``child_``/``newborn_``/``holder_`` ones describe the
  record's subject. The resident ID number carries that birth date, a sequence
  number whose parity gives the gender (odd = male) and a valid check digit.
  ``husband``/``father`` are men, ``wife``/``mother`` women.
* One administrative region per record feeds ``region_code``, ``address``,
  org names and (mostly) ID numbers.
* One reference date per record places event dates (registration, approval,
  death), timestamps (issued before updated) and newborns' birth dates.
* One life per person: everyone is born on or before the reference date, and
  nothing of the record (issue, registration, approval) happens before the
  birth of anyone in it. An ``age`` is the age on the reference date; parents
  are 20 to 40 years older than their child (and born 1920 or later). The
  subject of a record about school (``student``, ``pupil``, ``school`` or a
  ``grade`` field; or a child with an enrolment date) is a pupil in grade 1-9:
  it started school on 1 September of the year it was six by 31 August (its
  ``enrolment_date``), and its ``grade`` counts the school years since. Adults
  first enrol (in insurance, say) at 18 or later.
* Nothing that has happened is dated after :data:`AS_OF`; expiry dates and term
  ends fall after it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import re
import string
import struct
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import accumulate
from random import Random
from typing import Any

from exchange.avro import jsoncodec
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.avro.schema import parse
from exchange.dev.lifedates import (
    add_years,
    age_at,
    grade_at,
    grade_name,
    pupil_birth,
    school_entry,
)

__all__ = [
    "AS_OF",
    "REFERENCE_FIRST",
    "credit_code_check",
    "generate",
    "id_check_digit",
    "is_valid_credit_code",
    "is_valid_id_number",
    "iter_json_lines",
]

Schema = dict[str, Any]

#: The records describe the days from REFERENCE_FIRST to AS_OF: each record's reference day
#: (its events, the ages and school grades in it) falls in that period, and nothing that
#: has happened is dated after AS_OF (an expiry or term end may be).
REFERENCE_FIRST = dt.date(2024, 1, 1)
AS_OF = dt.date(2026, 6, 30)

_NULL_RATE = 0.1  # share of nullable values left null ...
_ALWAYS_PRESENT = 3  # ... except in the first records, which are complete
_MAX_DEPTH = 6  # recursive schemas: below this, optional parts stay empty

# ---------------------------------------------------------------------------
# Check digits
# ---------------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """Check character of a resident ID number (GB 11643, ISO 7064 MOD 11-2)."""
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise ValueError(f"expected 17 digits, got {first17!r}")
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def is_valid_id_number(s: str) -> bool:
    """18-character resident ID: 17 digits with a real birth date, then the check character.

    The check character ``X`` must be upper case, as the standard writes it.
    """
    if not isinstance(s, str) or len(s) != 18:
        return False
    body = s[:17]
    if not (body.isascii() and body.isdigit()):
        return False
    try:
        dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return id_check_digit(body) == s[17]


_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check(first17: str) -> str:
    """Check character of a unified social credit code (GB 32100-2015)."""
    if len(first17) != 17 or any(c not in _CREDIT_CHARS for c in first17):
        raise ValueError(f"expected 17 characters of {_CREDIT_CHARS!r}, got {first17!r}")
    total = sum(_CREDIT_CHARS.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return _CREDIT_CHARS[(31 - total % 31) % 31]


def is_valid_credit_code(s: str) -> bool:
    """18-character unified social credit code with a correct check character."""
    if not isinstance(s, str) or len(s) != 18 or any(c not in _CREDIT_CHARS for c in s):
        return False
    return credit_code_check(s[:17]) == s[17]


_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def _org_code_check(first8: str) -> str:
    """Check character of a GB 11714 organisation code (positions 9-17 of a credit code)."""
    total = sum(int(c, 36) * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def _luhn_digit(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


# ---------------------------------------------------------------------------
# Reference data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    code: str
    province: str
    city: str  # same as province for the four municipalities
    district: str

    @property
    def full(self) -> str:
        city = "" if self.city == self.province else self.city
        return f"{self.province}{city}{self.district}"

    @property
    def local(self) -> str:
        """How local org names begin: 杭州市西湖区, but 义乌市 for a county-level city."""
        return self.district if self.district.endswith("市") else f"{self.city}{self.district}"

    @property
    def city_short(self) -> str:
        return self.city.removesuffix("市")

    @property
    def district_short(self) -> str:
        d = self.district
        for suffix in ("新区", "区", "县", "市"):
            if d.endswith(suffix) and len(d) > len(suffix) + 1:
                return d.removesuffix(suffix)
        return d


# Real GB/T 2260 county-level codes; Zhejiang weighted up (the bus's home province).
_REGIONS = tuple(
    _Region(code, *names.split())
    for code, names in (
        ("330102", "浙江省 杭州市 上城区"),
        ("330105", "浙江省 杭州市 拱墅区"),
        ("330106", "浙江省 杭州市 西湖区"),
        ("330108", "浙江省 杭州市 滨江区"),
        ("330109", "浙江省 杭州市 萧山区"),
        ("330110", "浙江省 杭州市 余杭区"),
        ("330203", "浙江省 宁波市 海曙区"),
        ("330212", "浙江省 宁波市 鄞州区"),
        ("330302", "浙江省 温州市 鹿城区"),
        ("330402", "浙江省 嘉兴市 南湖区"),
        ("330502", "浙江省 湖州市 吴兴区"),
        ("330602", "浙江省 绍兴市 越城区"),
        ("330702", "浙江省 金华市 婺城区"),
        ("330782", "浙江省 金华市 义乌市"),
        ("331002", "浙江省 台州市 椒江区"),
        ("110101", "北京市 北京市 东城区"),
        ("110105", "北京市 北京市 朝阳区"),
        ("110108", "北京市 北京市 海淀区"),
        ("120101", "天津市 天津市 和平区"),
        ("310101", "上海市 上海市 黄浦区"),
        ("310104", "上海市 上海市 徐汇区"),
        ("310115", "上海市 上海市 浦东新区"),
        ("320102", "江苏省 南京市 玄武区"),
        ("320505", "江苏省 苏州市 虎丘区"),
        ("340102", "安徽省 合肥市 瑶海区"),
        ("350102", "福建省 福州市 鼓楼区"),
        ("350203", "福建省 厦门市 思明区"),
        ("360102", "江西省 南昌市 东湖区"),
        ("370102", "山东省 济南市 历下区"),
        ("420106", "湖北省 武汉市 武昌区"),
        ("430102", "湖南省 长沙市 芙蓉区"),
        ("440103", "广东省 广州市 荔湾区"),
        ("440106", "广东省 广州市 天河区"),
        ("440305", "广东省 深圳市 南山区"),
        ("500103", "重庆市 重庆市 渝中区"),
        ("510104", "四川省 成都市 锦江区"),
        ("510107", "四川省 成都市 武侯区"),
        ("610113", "陕西省 西安市 雁塔区"),
    )
)
_REGION_WEIGHTS = tuple(accumulate(4 if r.code.startswith("33") else 1 for r in _REGIONS))
_PLATE_PREFIX = {
    "浙江省": "浙",
    "北京市": "京",
    "天津市": "津",
    "上海市": "沪",
    "重庆市": "渝",
    "江苏省": "苏",
    "安徽省": "皖",
    "福建省": "闽",
    "江西省": "赣",
    "山东省": "鲁",
    "湖北省": "鄂",
    "湖南省": "湘",
    "广东省": "粤",
    "四川省": "川",
    "陕西省": "陕",
}
_STREETS = [
    "文三路",
    "文二路",
    "天目山路",
    "教工路",
    "学院路",
    "莫干山路",
    "延安路",
    "解放路",
    "庆春路",
    "凤起路",
    "中山路",
    "人民路",
    "建设路",
    "和平路",
    "长江路",
    "黄河路",
    "东风路",
    "新华路",
    "解放大道",
    "滨江大道",
    "江南大道",
    "体育场路",
    "环城北路",
    "望江路",
    "秋涛路",
    "丰潭路",
    "古墩路",
    "江虹路",
]
# Mobile number segments in ordinary use (no 14x data-only, no 170/171 virtual-operator ones).
_MOBILE_PREFIXES = (
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "173",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
)
_POSTCODES = ("310012", "310006", "310052", "315000", "325000", "100010", "200001", "510620")

_SURNAMES = (
    ("王", 71),
    ("李", 70),
    ("张", 68),
    ("刘", 54),
    ("陈", 46),
    ("杨", 31),
    ("黄", 25),
    ("赵", 23),
    ("吴", 20),
    ("周", 19),
    ("徐", 15),
    ("孙", 15),
    ("马", 13),
    ("朱", 13),
    ("胡", 12),
    ("郭", 11),
    ("何", 11),
    ("林", 10),
    ("高", 10),
    ("罗", 9),
    ("郑", 9),
    ("梁", 8),
    ("谢", 7),
    ("宋", 7),
    ("唐", 7),
    ("许", 6),
    ("韩", 6),
    ("冯", 6),
    ("邓", 6),
    ("曹", 5),
    ("彭", 5),
    ("曾", 5),
    ("肖", 5),
    ("田", 5),
    ("董", 5),
    ("潘", 4),
    ("袁", 4),
    ("蔡", 4),
    ("蒋", 4),
    ("余", 4),
    ("叶", 4),
    ("程", 4),
    ("沈", 3),
    ("钱", 2),
    ("欧阳", 1),
    ("司马", 1),
)
_SURNAME_LIST = tuple(s for s, _ in _SURNAMES)
_SURNAME_CUM = tuple(accumulate(w for _, w in _SURNAMES))
_GIVEN_MALE = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆旭宁龙林阳泽睿轩博文建国志峰诚"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀英慧婷雪琳晶颖洁玲欣怡悦萱涵梦雨佳瑶倩琪璐丹"
_PINYIN_FAMILY = [
    "wang",
    "li",
    "zhang",
    "liu",
    "chen",
    "yang",
    "huang",
    "zhao",
    "wu",
    "zhou",
    "xu",
    "sun",
    "ma",
    "zhu",
    "hu",
    "guo",
    "lin",
]
_PINYIN_GIVEN = [
    "wei",
    "fang",
    "na",
    "min",
    "jing",
    "qiang",
    "lei",
    "jun",
    "yang",
    "yan",
    "jie",
    "tao",
    "ming",
    "chao",
    "xia",
    "ping",
    "hao",
]
_EMAIL_DOMAINS = ("163.com", "qq.com", "126.com", "foxmail.com", "zj.gov.cn", "example.com")

_BRANDS = [
    "云栖",
    "华信",
    "恒达",
    "瑞丰",
    "博远",
    "天成",
    "新航",
    "智联",
    "海纳",
    "卓越",
    "鼎盛",
    "宏图",
    "启明",
    "嘉禾",
    "安泰",
    "汇通",
    "锦程",
    "长青",
]
_INDUSTRIES = [
    "科技",
    "信息技术",
    "网络科技",
    "贸易",
    "建设工程",
    "餐饮管理",
    "物流",
    "医疗器械",
    "文化传媒",
    "食品",
    "电子商务",
    "环保科技",
    "教育咨询",
    "服装",
    "机械制造",
    "新材料",
    "生物科技",
]
_COMPANY_SUFFIXES = ("有限公司",) * 6 + ("股份有限公司", "有限责任公司")
_ENTERPRISE_TYPES = (
    "有限责任公司（自然人投资或控股）",
    "有限责任公司（自然人独资）",
    "有限责任公司",
    "股份有限公司（非上市）",
)
_SCOPE_ITEMS = (
    "技术开发、技术服务、技术咨询",
    "软件开发",
    "信息系统集成服务",
    "日用百货销售",
    "食品经营（销售预包装食品）",
    "货物进出口",
    "广告设计、代理",
    "会议及展览服务",
    "餐饮服务",
    "建筑工程施工",
    "道路货物运输",
    "医疗器械经营",
)
_HOSPITALS_ZJ = (
    "浙江大学医学院附属妇产科医院",
    "浙江大学医学院附属第一医院",
    "浙江大学医学院附属第二医院",
    "浙江大学医学院附属儿童医院",
    "浙江省人民医院",
    "浙江省中医院",
)
_HOSPITAL_KINDS = ("第一人民医院", "人民医院", "中医院", "妇幼保健院", "中心医院", "儿童医院")
_BANKS = ("中国工商银行", "中国建设银行", "中国农业银行", "中国银行", "交通银行", "招商银行")
# (hint tokens, agency): the agency a record's field most likely names.
_AGENCIES = (
    (
        frozenset(["market", "enterprise", "business", "licence", "license", "company", "credit"]),
        "市场监督管理局",
    ),
    (frozenset(["marriage", "divorce", "civil", "affairs", "registry"]), "民政局婚姻登记处"),
    (frozenset(["allowance", "assistance", "welfare"]), "民政局"),
    (frozenset(["police", "population", "household", "resident", "residence"]), "公安分局"),
    (frozenset(["health", "birth", "death", "medical", "hospital"]), "卫生健康局"),
    (
        frozenset(["insurance", "social", "hrss", "pension", "employment", "labour", "labor"]),
        "人力资源和社会保障局",
    ),
    (frozenset(["tax", "taxation"]), "税务局"),
    (frozenset(["school", "education", "student"]), "教育局"),
    (frozenset(["housing", "property", "estate", "construction"]), "住房和城乡建设局"),
)
_AGENCY_DEFAULT = ("行政审批局", "市场监督管理局", "民政局", "人力资源和社会保障局")
_DISEASES = (
    ("急性心肌梗死", "I21.9"),
    ("脑出血", "I61.9"),
    ("脑梗死", "I63.9"),
    ("肺恶性肿瘤", "C34.9"),
    ("肝恶性肿瘤", "C22.9"),
    ("胃恶性肿瘤", "C16.9"),
    ("慢性阻塞性肺疾病", "J44.9"),
    ("肺炎", "J18.9"),
    ("高血压性心脏病", "I11.9"),
    ("2型糖尿病", "E11.9"),
    ("阿尔茨海默病", "G30.9"),
)
_ETHNIC_MINORITIES = [
    "回族",
    "满族",
    "蒙古族",
    "壮族",
    "苗族",
    "土家族",
    "畲族",
    "藏族",
    "维吾尔族",
    "彝族",
]
_OCCUPATIONS = [
    "公务员",
    "教师",
    "医生",
    "护士",
    "工程师",
    "企业职员",
    "个体工商户",
    "农民",
    "学生",
    "自由职业",
    "退休人员",
]
_EDUCATION = ["小学", "初中", "高中", "中专", "大专", "本科", "硕士研究生", "博士研究生"]
_MARITAL = ("未婚", "已婚", "已婚", "离婚", "丧偶")
_RELATIONS = ("户主", "户主", "配偶", "子", "女", "父亲", "母亲", "孙子", "孙女")
_STATUS_WORDS = ("正常", "有效", "已办结", "审核中", "已受理")
_REMARKS = (
    "无",
    "材料齐全，准予办理",
    "信息已核验",
    "按规定办理",
    "待补充材料",
    "已电话告知申请人",
    "数据已同步",
)
_TITLE_TOPICS = (
    "开展数据共享工作",
    "调整办事流程",
    "加强数据安全管理",
    "推进一网通办",
    "做好年度核查",
)
_TITLE_KINDS = ("通知", "意见", "批复", "报告", "函")
_WORDS = [
    "信息",
    "数据",
    "服务",
    "业务",
    "事项",
    "材料",
    "登记",
    "备案",
    "档案",
    "项目",
    "样例",
    "记录",
]
_MAP_KEYS = ("source", "category", "tag", "note", "channel", "version", "owner", "level")

# ---------------------------------------------------------------------------
# Field names
# ---------------------------------------------------------------------------

_SCHOOLING = frozenset(["pupil", "student", "school", "kindergarten", "xueji", "nianji"])
_ENROL = frozenset(["enrolment", "enrollment", "enrolled", "enrol", "enroll"])
_CHILD = frozenset(
    ["child", "children", "kid", "son", "daughter", "minor", "pupil", "student", "juvenile"]
)
_NEWBORN = frozenset(["birth", "newborn", "neonatal", "neonate", "baby", "infant"])
_ELDER = frozenset(
    ["death", "died", "deceased", "dead", "pension", "retire", "retired", "retirement", "elderly"]
)
_ADULT = frozenset(
    [
        "mother",
        "father",
        "husband",
        "wife",
        "spouse",
        "parent",
        "guardian",
        "representative",
        "legal",
        "applicant",
        "owner",
        "operator",
        "agent",
        "declarant",
        "employee",
        "employer",
        "insured",
        "insurance",
        "enrolment",
        "enrollment",
        "marriage",
        "divorce",
        "licence",
        "license",
        "business",
        "enterprise",
        "allowance",
        "teacher",
        "doctor",
        "officer",
        "driver",
        "worker",
        "contributor",
        "taxpayer",
    ]
)
_PARENT = frozenset(["mother", "father", "parent", "parents", "guardian"])
_FEMALE = frozenset(
    ["mother", "wife", "female", "woman", "girl", "daughter", "maternal", "mom", "mum", "bride"]
)
_MALE = frozenset(["father", "husband", "male", "man", "boy", "son", "paternal", "dad", "groom"])
_SUBJECT_ALIASES = frozenset(
    [
        "child",
        "newborn",
        "baby",
        "infant",
        "person",
        "citizen",
        "resident",
        "subject",
        "self",
        "personal",
        "individual",
        "holder",
        "patient",
        "deceased",
        "insured",
    ]
)
_KEY_NOISE = frozenset(
    [
        "full",
        "real",
        "true",
        "chinese",
        "cn",
        "zh",
        "first",
        "last",
        "given",
        "family",
        "former",
        "used",
        "alias",
        "previous",
        "old",
        "other",
        "maiden",
    ]
)
_PERSON_NOUNS = frozenset(
    [
        "representative",
        "applicant",
        "guardian",
        "contact",
        "spouse",
        "mother",
        "father",
        "husband",
        "wife",
        "holder",
        "operator",
        "handler",
        "reviewer",
        "approver",
        "auditor",
        "doctor",
        "physician",
        "midwife",
        "nurse",
        "registrant",
        "agent",
        "declarant",
        "informant",
        "witness",
        "inspector",
        "officer",
        "clerk",
        "recipient",
        "receiver",
        "sender",
        "signer",
        "manager",
        "director",
        "supervisor",
        "teacher",
        "student",
        "child",
        "patient",
        "deceased",
        "person",
        "citizen",
        "resident",
        "parent",
        "creator",
        "modifier",
        "assignee",
        "owner",
        "principal",
        "leader",
        "chairman",
        "employee",
        "member",
        "heir",
        "partner",
        "shareholder",
        "investor",
        "submitter",
        "acceptor",
    ]
)
_ORG = frozenset(
    [
        "company",
        "enterprise",
        "corp",
        "corporation",
        "org",
        "organization",
        "organisation",
        "organ",
        "hospital",
        "clinic",
        "school",
        "university",
        "college",
        "kindergarten",
        "bank",
        "institution",
        "institute",
        "unit",
        "agency",
        "department",
        "dept",
        "bureau",
        "authority",
        "office",
        "issuer",
        "employer",
        "firm",
        "shop",
        "store",
        "merchant",
        "registrar",
        "registry",
        "court",
        "government",
        "gov",
        "committee",
        "center",
        "centre",
        "station",
        "factory",
        "association",
        "entity",
        "supplier",
        "vendor",
        "manufacturer",
        "producer",
        "insurer",
        "publisher",
    ]
)
_ORG_FIELD_ENDINGS = _ORG | {"name", "title", "by"}
_HOSPITAL = frozenset(
    ["hospital", "clinic", "medical", "delivery", "midwifery", "maternity", "birth", "health"]
)
_GOV = frozenset(
    [
        "issue",
        "issued",
        "issuing",
        "issuer",
        "authority",
        "registration",
        "register",
        "registrar",
        "registry",
        "approval",
        "approving",
        "approver",
        "government",
        "gov",
        "bureau",
        "department",
        "dept",
        "agency",
        "office",
        "court",
        "committee",
        "police",
        "licensing",
    ]
)
_SCHOOL = frozenset(["school", "university", "college", "kindergarten"])
_THING = frozenset(
    [
        "file",
        "product",
        "item",
        "course",
        "project",
        "brand",
        "category",
        "type",
        "event",
        "service",
        "matter",
        "document",
        "doc",
        "certificate",
        "license",
        "licence",
        "title",
        "app",
        "system",
        "host",
        "domain",
        "table",
        "field",
        "topic",
        "resource",
        "catalog",
        "dataset",
        "schema",
        "column",
        "report",
        "form",
        "plan",
        "policy",
        "program",
        "task",
        "job",
        "position",
        "post",
        "goods",
        "commodity",
        "drug",
        "medicine",
        "disease",
        "diagnosis",
        "vaccine",
        "material",
        "industry",
        "scope",
    ]
)
_PLACE = frozenset(
    [
        "village",
        "community",
        "province",
        "city",
        "district",
        "county",
        "region",
        "country",
        "nation",
        "place",
        "area",
        "town",
        "township",
        "street",
        "road",
    ]
)
_USER = frozenset(["user", "login", "nick", "nickname", "screen", "username", "account"])
_MONEY = frozenset(
    [
        "amount",
        "fee",
        "price",
        "cost",
        "salary",
        "wage",
        "income",
        "tax",
        "payment",
        "paid",
        "balance",
        "subsidy",
        "allowance",
        "fund",
        "fine",
        "penalty",
        "deposit",
        "revenue",
        "expense",
        "charge",
        "pension",
        "benefit",
        "money",
        "sum",
        "contribution",
        "premium",
        "asset",
        "assets",
        "capital",
        "base",
        "loan",
        "debt",
        "compensation",
        "reward",
        "bonus",
    ]
)
_PHOTO = frozenset(["photo", "image", "picture", "avatar", "photograph", "portrait", "headshot"])
_ATTACHMENT = frozenset(["pdf", "file", "attachment", "document", "doc", "scan"])
_TRUE_MOSTLY = frozenset(
    [
        "is",
        "has",
        "valid",
        "active",
        "enabled",
        "verified",
        "approved",
        "passed",
        "alive",
        "normal",
        "consent",
        "agreed",
        "electronic",
        "online",
    ]
)
_FALSE_MOSTLY = frozenset(
    [
        "deleted",
        "revoked",
        "cancelled",
        "canceled",
        "expired",
        "abnormal",
        "blacklisted",
        "disabled",
        "dead",
        "deceased",
        "suspended",
    ]
)
_TIME_TOKENS = frozenset(["time", "timestamp", "datetime", "ts", "epoch", "at", "millis"])
_EXPIRY = frozenset(["expiry", "expire", "expires", "expiration", "until", "due", "deadline"])
_EVENT = frozenset(
    [
        "registration",
        "registered",
        "approval",
        "approved",
        "issue",
        "issued",
        "apply",
        "application",
        "accept",
        "accepted",
        "handle",
        "handled",
        "decision",
        "report",
        "reported",
        "death",
        "died",
    ]
)
_START = frozenset(
    [
        "established",
        "founded",
        "establish",
        "start",
        "begin",
        "first",
        "enrolled",
        "opening",
        "since",
    ]
)
_STATUS = frozenset(["status", "state"])

_ID_RE = re.compile(
    r"(?:^|_)(?:id_?card|id_?number|id_?num|id_?no|citizen_?id|identity_?(?:card|number|no)"
    r"|resident_?id|sfzh|sfzhm|sfz|gmsfhm)(?:_(?:no|number|num|code))?$"
)
_BIRTH_RE = re.compile(
    r"(?:^|_)(?:birth_?date|birth_?day|date_of_birth|dob|birth|born(?:_on|_date)?"
    r"|(?:birth|born)_?(?:datetime|time|timestamp|year)|csrq)$"
)
_GENDER_RE = re.compile(r"(?:^|_)(?:gender|sex|xb)(?:_code)?$")
_AGE_RE = re.compile(r"(?:^|_)(?:age|nianling)$")
_NAME_ENDINGS = {
    "name": "name",
    "fullname": "name",
    "xm": "name",
    "xingming": "name",
    "surname": "surname",
    "lastname": "surname",
    "familyname": "surname",
    "firstname": "given",
    "givenname": "given",
}
# For opaque field names (nothing recognised), the field's doc decides.
_DOC_ALIASES = (
    ("身份号码", "id_number"),
    ("身份证", "id_number"),
    ("信用代码", "credit_code"),
    ("行政区划", "region_code"),
    ("出生日期", "birth_date"),
    ("性别", "gender"),
    ("手机", "mobile"),
    ("电话", "phone"),
    ("邮箱", "email"),
    ("电子邮件", "email"),
    ("住址", "address"),
    ("地址", "address"),
    ("住所", "address"),
    ("医院", "hospital_name"),
    ("医疗机构", "hospital_name"),
    ("企业名称", "enterprise_name"),
    ("单位名称", "company_name"),
    ("登记机关", "registration_authority"),
    ("姓名", "name"),
    ("民族", "ethnicity"),
    ("籍贯", "native_place"),
    ("金额", "amount"),
    ("年龄", "age"),
    ("体重", "weight"),
    ("身高", "height"),
    ("备注", "remark"),
    ("状态", "status"),
    ("日期", "date"),
    ("时间", "time"),
    ("编号", "no"),
    ("代码", "code"),
)
_EXAMPLE_RE = re.compile(r"(?:如|例如|e\.g\.,?)\s*([A-Za-z0-9][A-Za-z0-9\-/]{3,})")


def _plural_forms(token: str) -> set[str]:
    forms = {token}
    if token == "children":  # noqa: S105 - a word, not a password
        forms.add("child")
    elif len(token) > 4 and token.endswith("ies"):
        forms.add(token[:-3] + "y")
    elif len(token) > 4 and token.endswith("es"):
        forms |= {token[:-2], token[:-1]}
    elif len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
        forms.add(token[:-1])
    return forms


@lru_cache(maxsize=4096)
def _snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    s = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", s)
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


@lru_cache(maxsize=4096)
def _tokens(snake: str) -> frozenset[str]:
    out: set[str] = set()
    for t in snake.split("_"):
        if t:
            out |= _plural_forms(t)
    return frozenset(out)


_VOCABULARY: frozenset[str] = frozenset[str]().union(
    _CHILD,
    _NEWBORN,
    _ELDER,
    _ADULT,
    _SUBJECT_ALIASES,
    _PERSON_NOUNS,
    _ORG,
    _THING,
    _PLACE,
    _USER,
    _MONEY,
    _PHOTO,
    _ATTACHMENT,
    _TRUE_MOSTLY,
    _FALSE_MOSTLY,
    _TIME_TOKENS,
    _EXPIRY,
    _EVENT,
    _START,
    _STATUS,
    _NAME_ENDINGS,
    [
        "id",
        "no",
        "number",
        "num",
        "code",
        "credit",
        "uscc",
        "phone",
        "mobile",
        "tel",
        "telephone",
        "cellphone",
        "fax",
        "email",
        "mail",
        "postcode",
        "postal",
        "zip",
        "address",
        "addr",
        "residence",
        "domicile",
        "location",
        "native",
        "hometown",
        "origin",
        "birthplace",
        "url",
        "website",
        "homepage",
        "link",
        "ip",
        "plate",
        "ethnic",
        "ethnicity",
        "nationality",
        "citizenship",
        "occupation",
        "profession",
        "education",
        "degree",
        "marital",
        "blood",
        "relation",
        "relationship",
        "remark",
        "note",
        "description",
        "comment",
        "memo",
        "reason",
        "content",
        "summary",
        "opinion",
        "cause",
        "icd",
        "hash",
        "digest",
        "checksum",
        "signature",
        "uuid",
        "guid",
        "date",
        "time",
        "age",
        "weight",
        "height",
        "length",
        "gender",
        "sex",
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "count",
        "quantity",
        "score",
        "rate",
        "ratio",
        "percent",
        "latitude",
        "longitude",
        "lat",
        "lon",
        "lng",
    ],
)


def _effective_snake(name: str, doc: Any) -> str:
    """The field's snake-case name, or a stand-in taken from its doc if the name is opaque."""
    snake = _snake(name)
    if _tokens(snake) & _VOCABULARY or not isinstance(doc, str):
        return snake
    for word, alias in _DOC_ALIASES:
        if word in doc:
            return alias
    return snake


def _canonical_key(tokens: list[str]) -> str:
    key = "_".join(t for t in tokens if t not in _KEY_NOISE)
    return "" if key in _SUBJECT_ALIASES else key


@lru_cache(maxsize=4096)
def _person_role(snake: str) -> tuple[str, str, str] | None:
    """``(role, person key, prefix)`` for fields describing a person, else ``None``.

    Roles: ``id``, ``birth``, ``gender``, ``age``, ``name``, ``surname``, ``given``. The
    prefix is what names the person (``mother`` in ``mother_id_number``); the key
    is the prefix without noise words, ``""`` for the record's subject.
    """
    for role, regex in (
        ("id", _ID_RE),
        ("birth", _BIRTH_RE),
        ("gender", _GENDER_RE),
        ("age", _AGE_RE),
    ):
        m = regex.search(snake)
        if m:
            before = snake[: m.start()]
            return role, _canonical_key(before.split("_")), before
    parts = [p for p in snake.split("_") if p]
    if not parts:
        return None
    if parts[-1] in _NAME_ENDINGS:
        prefix = parts[:-1]
        found = set().union(*(_plural_forms(p) for p in prefix)) if prefix else set()
        if found & (_ORG | _THING | _PLACE | _USER | {"org"}):
            return None
        role = _NAME_ENDINGS[parts[-1]]
        if role == "name" and prefix and prefix[-1] in ("last", "family"):
            role = "surname"
        elif role == "name" and prefix and prefix[-1] in ("first", "given"):
            role = "given"
        return role, _canonical_key(prefix), "_".join(prefix)
    if parts[-1] in _PERSON_NOUNS or (parts[-1] == "by" and not _tokens(snake) & _GOV):
        named = parts if parts[-1] != "by" else parts[:-1]
        return "name", _canonical_key(named), "_".join(named)
    return None


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Person:
    birth: dt.date
    male: bool
    pupil: bool = False  # at school on the record's reference date (see _make_person)


@dataclass(frozen=True)
class _FieldPlan:
    name: str
    snake: str
    tokens: frozenset[str]
    person_key: str | None
    example: str | None


@dataclass(frozen=True)
class _RecordPlan:
    fields: tuple[_FieldPlan, ...]
    hints: frozenset[str]  # record name, namespace and enclosing field
    person_hints: Mapping[str, frozenset[str]]  # words naming each person of the record
    schooling: bool  # the record is about school: its subject is a pupil (if a child)


@dataclass(frozen=True)
class _Slot:
    """What a value generator knows about the place it fills."""

    snake: str
    tokens: frozenset[str]
    hints: frozenset[str]
    example: str | None
    person: _Person | None
    subject: _Person | None  # the person the record is about
    earliest: dt.date  # the latest birth in the record: nothing of it happens before
    region: _Region
    anchor: dt.date  # the record's reference date
    record_path: str
    index: int
    stream: str  # seed and schema name, the root of every random stream


def _rand_date(rng: Random, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=rng.randrange((hi - lo).days + 1))


def _digits(rng: Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _float32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


class _Generator:
    def __init__(self, schema: Schema, seed: int) -> None:
        parse(schema)
        self._schema = schema
        name = str(schema["name"])
        namespace = schema.get("namespace")
        full_name = f"{namespace}.{name}" if namespace and "." not in name else name
        # Streams depend on the schema's full name too: two resources generated
        # with the same seed do not share certificate numbers or addresses.
        self._stream = f"{seed}\x1f{full_name}"
        self._named: dict[str, Any] = {}
        self._collect(schema, None)
        self._stream_keys: dict[str, int] = {}
        self._plans: dict[tuple[int, frozenset[str]], _RecordPlan] = {}

    # -- plumbing -----------------------------------------------------------

    def _collect(self, t: Any, namespace: str | None) -> None:
        if isinstance(t, list):
            for branch in t:
                self._collect(branch, namespace)
        elif isinstance(t, dict):
            kind = t.get("type")
            if kind in ("record", "error", "enum", "fixed") and "name" in t:
                name = str(t["name"])
                ns = t.get("namespace", namespace)
                if "." in name:
                    ns = name.rsplit(".", 1)[0]
                self._named.setdefault(name.rsplit(".", 1)[-1], t)
                if ns:
                    self._named[f"{ns}.{name.rsplit('.', 1)[-1]}"] = t
                namespace = ns
            for f in t.get("fields", ()):
                self._collect(f["type"], namespace)
            for key in ("items", "values"):
                if key in t:
                    self._collect(t[key], namespace)
            if isinstance(kind, dict | list):
                self._collect(kind, namespace)

    def _resolve(self, t: Any) -> Any:
        while isinstance(t, str) and t not in _PRIMITIVES:
            t = self._named.get(t) or self._named[t.rsplit(".", 1)[-1]]
        return t

    def _rng(self, index: int, path: str) -> Random:
        """The random stream of one value: a function of (seed, schema, path, index) only."""
        key = self._stream_keys.get(path)
        if key is None:
            digest = hashlib.blake2b(f"{self._stream}\x1f{path}".encode(), digest_size=8).digest()
            key = self._stream_keys[path] = int.from_bytes(digest, "big")
        return Random((key << 64) | index)  # noqa: S311 - sample data, not secrets

    # -- records --------------------------------------------------------------

    def record(self, index: int) -> dict[str, Any]:
        region = self._rng(index, "#region").choices(_REGIONS, cum_weights=_REGION_WEIGHTS)[0]
        anchor = _rand_date(self._rng(index, "#anchor"), dt.date(2024, 1, 1), dt.date(2025, 12, 31))
        return self._record(self._schema, "", index, 0, frozenset(), region, anchor)

    def _plan(self, t: Schema, outer: frozenset[str]) -> _RecordPlan:
        cache_key = (id(t), outer)
        plan = self._plans.get(cache_key)
        if plan is not None:
            return plan
        hints = set(outer) | _tokens(_snake(str(t.get("name", "")).rsplit(".", 1)[-1]))
        namespace = str(t.get("namespace", ""))
        if namespace:
            hints |= _tokens(_snake(namespace.rsplit(".", 1)[-1]))
        fields = []
        groups: dict[str, set[str]] = {}
        for f in t["fields"]:
            snake = _effective_snake(f["name"], f.get("doc"))
            role = _person_role(snake)
            key = None
            if role is not None:
                key = role[1]
                groups.setdefault(key, set()).update(_tokens(role[2]))
            doc = f.get("doc")
            m = _EXAMPLE_RE.search(doc) if isinstance(doc, str) else None
            example = m.group(1) if m and any(c.isdigit() for c in m.group(1)) else None
            fields.append(_FieldPlan(f["name"], snake, _tokens(snake), key, example))
        words = hints.union(*(f.tokens for f in fields))
        young = (hints | groups.get("", set())) & (_CHILD | _NEWBORN)
        schooling = bool(words & _SCHOOLING) or any(f.snake == "grade" for f in fields)
        plan = _RecordPlan(
            tuple(fields),
            frozenset(hints),
            {k: frozenset(v) for k, v in groups.items()},
            schooling or bool(words & _ENROL and young),
        )
        self._plans[cache_key] = plan
        return plan

    def _record(
        self,
        t: Schema,
        path: str,
        index: int,
        depth: int,
        outer: frozenset[str],
        region: _Region,
        anchor: dt.date,
    ) -> dict[str, Any]:
        """One record; nested records share the region and reference date of the top one."""
        plan = self._plan(t, outer)
        persons: dict[str, _Person] = {}
        for key in sorted(plan.person_hints, key=bool):  # the subject first: parents follow it
            persons[key] = _make_person(
                self._rng(index, f"{path}#person:{key}"),
                plan.person_hints[key],
                plan.hints,
                anchor,
                subject=not key,
                pupil=plan.schooling and not key,
                child=persons.get(""),
            )
        subject = persons.get("")
        earliest = max((p.birth for p in persons.values()), default=dt.date.min)
        out: dict[str, Any] = {}
        for fp, f in zip(plan.fields, t["fields"], strict=True):
            fpath = f"{path}.{fp.name}" if path else fp.name
            person = None
            hints = plan.hints
            if fp.person_key is not None:
                person = persons[fp.person_key]
                hints = hints | plan.person_hints[fp.person_key]
            slot = _Slot(
                fp.snake,
                fp.tokens,
                hints,
                fp.example,
                person,
                subject,
                earliest,
                region,
                anchor,
                path,
                index,
                self._stream,
            )
            out[fp.name] = self._value(f["type"], slot, fpath, depth + 1)
        return out

    # -- dispatch on the Avro type ------------------------------------------------

    def _value(self, t: Any, slot: _Slot, path: str, depth: int) -> Any:
        t = self._resolve(t)
        if isinstance(t, list):
            branches = [b for b in t if b != "null"]
            if "null" in t and (
                not branches
                or depth > _MAX_DEPTH
                or (
                    slot.index >= _ALWAYS_PRESENT
                    and self._rng(slot.index, f"{path}#null").random() < _NULL_RATE
                )
            ):
                return None
            # The first non-null branch: jsoncodec.from_json tries branches in
            # order, so a value of the first one always reads back as itself.
            # Deep in a recursive schema, a branch that is not a record ends it.
            branch = branches[0]
            if depth > _MAX_DEPTH:
                flat = [b for b in branches if not _is_record(self._resolve(b))]
                branch = flat[0] if flat else branch
            return self._value(branch, slot, path, depth)
        if isinstance(t, dict):
            return self._complex(t, slot, path, depth)
        rng = self._rng(slot.index, path)
        if t == "null":
            return None
        if t == "boolean":
            return _boolean(slot, rng)
        if t in ("int", "long"):
            return _integer(slot, rng, t)
        if t in ("float", "double"):
            return _floating(slot, rng, t)
        if t == "bytes":
            return _bytes(slot, rng)
        if t == "string":
            return _string(slot, rng)
        raise ValueError(f"{path}: unsupported Avro type {t!r}")

    def _complex(self, t: Schema, slot: _Slot, path: str, depth: int) -> Any:
        base = t.get("type")
        lt = t.get("logicalType")
        rng = self._rng(slot.index, path)
        if lt == "date" and base == "int":
            return _date(slot, rng)
        if lt in ("timestamp-millis", "timestamp-micros") and base == "long":
            return _timestamp(slot, rng)
        if lt == "decimal" and base in ("bytes", "fixed"):
            return _decimal(slot, rng, t)
        if lt == "uuid" and base == "string":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if lt == "time-millis" and base == "int":
            return _time_of_day_ms(rng)
        if lt == "time-micros" and base == "long":
            return _time_of_day_ms(rng) * 1000
        if lt in ("local-timestamp-millis", "local-timestamp-micros") and base == "long":
            naive = _timestamp(slot, rng).replace(tzinfo=dt.UTC)
            ms = int(naive.timestamp() * 1000)
            return ms if lt.endswith("millis") else ms * 1000
        if base in ("record", "error"):
            if depth > _MAX_DEPTH * 2:
                raise ValueError(f"{path}: schema recursion too deep to generate a value")
            return self._record(t, path, slot.index, depth, slot.tokens, slot.region, slot.anchor)
        if base == "enum":
            return _enum(slot, rng, t["symbols"])
        if base == "fixed":
            return rng.randbytes(int(t["size"]))
        if base == "array":
            if depth > _MAX_DEPTH:
                return []
            n = rng.randint(1, 3)
            item_slot = replace(slot, person=None)
            return [self._value(t["items"], item_slot, f"{path}[{i}]", depth + 1) for i in range(n)]
        if base == "map":
            if depth > _MAX_DEPTH:
                return {}
            keys = rng.sample(_MAP_KEYS, rng.randint(1, 3))
            item_slot = replace(slot, person=None)
            return {
                k: self._value(t["values"], item_slot, f"{path}{{{k}}}", depth + 1) for k in keys
            }
        return self._value(base, slot, path, depth)


_PRIMITIVES = frozenset(["null", "boolean", "int", "long", "float", "double", "bytes", "string"])


def _is_record(t: Any) -> bool:
    return isinstance(t, dict) and t.get("type") in ("record", "error")


# ---------------------------------------------------------------------------
# Values by type
# ---------------------------------------------------------------------------


def _make_person(
    rng: Random,
    own: frozenset[str],
    context: frozenset[str],
    anchor: dt.date,
    *,
    subject: bool,
    pupil: bool = False,
    child: _Person | None = None,
) -> _Person:
    """A person named by ``own`` words (``mother``), in a record described by ``context``.

    The context (record name, namespace, enclosing field) speaks only for the
    record's subject. Parents are 20 to 40 years older than ``child``, the
    record's subject (or than a newborn or child the context speaks of).
    Everyone is born on or before ``anchor``, the record's reference date.
    """
    hints = own | context if subject else own
    if hints & _FEMALE and not hints & _MALE:
        male = False
    elif hints & _MALE and not hints & _FEMALE:
        male = True
    else:
        male = rng.random() < 0.5
    parent_of = None  # the birth of the parent's child
    if not subject and own & _PARENT:
        parent_of = child.birth if child is not None else None
        if parent_of is None and context & (_NEWBORN | _CHILD):
            parent_of = anchor
    # a record about school is about a pupil, unless its subject is said to be grown up
    pupil = pupil and bool(hints & (_CHILD | _NEWBORN) or not hints & (_ELDER | _ADULT))
    if pupil:
        birth = pupil_birth(rng, anchor)
    elif hints & _NEWBORN:
        birth = anchor - dt.timedelta(days=1 + rng.randrange(60))
    elif hints & _CHILD:
        birth = _rand_date(rng, add_years(anchor, -18) + dt.timedelta(days=1), anchor)
    elif parent_of is not None:
        oldest = max(add_years(parent_of, -40), dt.date(1920, 1, 1))
        birth = _rand_date(rng, oldest, add_years(parent_of, -20))
    elif hints & _ELDER:
        birth = _rand_date(rng, dt.date(1940, 1, 1), dt.date(1975, 12, 31))
    elif hints & _ADULT:
        birth = _rand_date(rng, dt.date(1955, 1, 1), add_years(anchor, -22))
    else:
        birth = _rand_date(rng, dt.date(1940, 1, 1), add_years(anchor, -22))
    return _Person(birth, male, pupil)


def _subject(slot: _Slot, rng: Random) -> _Person:
    if slot.person is not None:
        return slot.person
    return _make_person(rng, frozenset(), slot.hints, slot.anchor, subject=True)


def _time_of_day_ms(rng: Random) -> int:
    if rng.random() < 0.85:  # office hours, mostly
        return rng.randrange(8 * 3_600_000 + 1_800_000, 17 * 3_600_000 + 1_800_000)
    return rng.randrange(86_400_000)


def _date(slot: _Slot, rng: Random) -> dt.date:
    role = _person_role(slot.snake)
    if role is not None and role[0] == "birth":
        return _subject(slot, rng).birth
    tok = slot.tokens
    anchor, earliest, subject = slot.anchor, slot.earliest, slot.subject
    if tok & _EXPIRY or ("end" in tok and tok & {"term", "valid", "validity"}):
        return _rand_date(rng, AS_OF + dt.timedelta(days=1), add_years(anchor, 20))
    if tok & _ENROL and subject is not None:
        if subject.pupil:
            return school_entry(subject.birth)
        lo = max(add_years(subject.birth, 18), dt.date(1995, 1, 1))
        if lo <= anchor - dt.timedelta(days=60):
            return _rand_date(rng, lo, anchor - dt.timedelta(days=60))
    if tok & _EVENT:
        return anchor - dt.timedelta(days=rng.randrange(min(31, (anchor - earliest).days + 1)))
    lo = max(dt.date(2015, 1, 1), earliest)
    if tok & _START:
        return _rand_date(rng, lo, max(lo, anchor - dt.timedelta(days=60)))
    return _rand_date(rng, lo, anchor)


def _timestamp(slot: _Slot, rng: Random) -> dt.datetime:
    role = _person_role(slot.snake)
    if role is not None and role[0] == "birth":
        day = _subject(slot, rng).birth
        ms = rng.randrange(86_400_000)
    else:
        if slot.tokens & {"updated", "modified", "changed", "synced", "sync", "last"}:
            offset = rng.randint(60, 360)
        else:
            offset = rng.randrange(31)
        day = min(slot.anchor + dt.timedelta(days=offset), AS_OF)
        ms = _time_of_day_ms(rng)
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ)
    return midnight + dt.timedelta(milliseconds=ms)


def _boolean(slot: _Slot, rng: Random) -> bool:
    if slot.tokens & _FALSE_MOSTLY:
        return rng.random() < 0.1
    if slot.tokens & _TRUE_MOSTLY:
        return rng.random() < 0.85
    return rng.random() < 0.5


def _enum(slot: _Slot, rng: Random, symbols: list[str]) -> str:
    role = _person_role(slot.snake)
    if role is not None and role[0] == "gender":
        male = _subject(slot, rng).male
        wanted = ("male", "m", "man", "boy", "nan") if male else ("female", "f", "woman", "girl")
        for s in symbols:
            if s.lower() in wanted:
                return s
    if slot.tokens & _STATUS and rng.random() < 0.7:
        return symbols[0]  # the first status is usually the ordinary one
    return str(rng.choice(symbols))


def _numeric_range(slot: _Slot, kind: str) -> tuple[float, float, int]:
    """``(low, high, decimal places)`` of a plausible number for the field."""
    tok = slot.tokens
    hints = tok | slot.hints
    if tok & {"latitude", "lat"}:
        return 18.0, 53.0, 6
    if tok & {"longitude", "lon", "lng"}:
        return 73.0, 135.0, 6
    if "age" in tok:
        if hints & (_CHILD | _NEWBORN):
            return 0, 17, 0
        return (18, 80, 0) if hints & _ADULT else (0, 100, 0)
    if "weight" in tok:
        if "kg" in tok:
            return (2.5, 4.2, 2) if hints & _NEWBORN else (40, 100, 1)
        return (45000, 90000, 0) if hints & _ADULT and not hints & _NEWBORN else (2500, 4200, 0)
    if tok & {"height", "length", "stature"}:
        return (45, 56, 1) if hints & _NEWBORN else (150, 190, 1)
    if tok & {"gestation", "gestational", "pregnancy"}:
        return 37, 42, 0
    if tok & {"temperature", "temp"}:
        return 36.0, 37.5, 1
    if tok & {"months", "weeks", "days", "years"} and not tok & {"monthly", "weekly", "daily"}:
        top = {"months": 360, "weeks": 520, "days": 3650, "years": 40}
        return 1, max(top[t] for t in tok & set(top)), 0
    poor = hints & {"allowance", "assistance", "relief", "poverty", "subsistence"}
    if tok & {"capital", "assets", "asset"}:
        if "capital" in tok:
            return 100_000, 50_000_000, 2
        return (0, 30_000, 2) if poor else (0, 500_000, 2)
    if tok & {"allowance", "subsidy", "benefit", "pension", "relief"}:
        return 300, 4000, 2
    if tok & {"income", "salary", "wage", "base"}:
        if poor:
            return 0, 1000, 2  # households on minimum living allowance
        return 2000, 30000, 2
    if tok & {"contribution", "premium", "fee"}:
        return 50, 3000, 2
    if tok & _MONEY:
        return 10, 50000, 2
    if tok & {"ratio", "proportion"}:
        return 0, 1, 4
    if tok & {"percent", "percentage", "pct", "rate", "score"}:
        return 0, 100, 2
    if "area" in tok:
        return 20, 300, 2
    if "year" in tok:
        return 2015, slot.anchor.year, 0
    if "month" in tok:
        return (1, 360, 0) if "months" in tok else (1, 12, 0)
    if "week" in tok:
        return 1, 52, 0
    if "day" in tok:
        return (1, 365, 0) if "days" in tok else (1, 28, 0)
    if "hour" in tok:
        return 0, 23, 0
    if tok & {"minute", "second"}:
        return 0, 59, 0
    if tok & {"household", "family"} and tok & {"size", "member", "population", "count"}:
        return 1, 6, 0
    if "population" in tok:
        return 1000, 5_000_000, 0
    if tok & {"level", "grade", "rank", "priority", "star"}:
        return 1, 5, 0
    if tok & {"count", "quantity", "qty", "times", "total", "num", "number", "size"}:
        return 0, 200, 0
    if tok & {"seq", "sequence", "version", "order", "index", "no", "serial"}:
        return 1, 9999, 0
    if kind == "long":
        return 0, 1_000_000_000, 0
    if kind == "int":
        return 0, 10000, 0
    return 0, 1000, 2


_INT_LIMITS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def _integer(slot: _Slot, rng: Random, kind: str) -> int:
    tok = slot.tokens
    role = _person_role(slot.snake)
    if role is not None and role[0] == "gender":
        return 1 if _subject(slot, rng).male else 2  # GB/T 2261.1
    if role is not None and role[0] == "age":
        return age_at(_subject(slot, rng).birth, slot.anchor)
    if role is not None and role[0] == "birth" and "year" in tok:
        return _subject(slot, rng).birth.year
    if (role is not None and role[0] == "birth") or "date" in tok:
        d = _date(slot, rng)
        return d.year * 10000 + d.month * 100 + d.day
    if "grade" in tok and slot.subject is not None and slot.subject.pupil:
        return grade_at(slot.subject.birth, slot.anchor)
    not_instants = {"times", "month", "day", "hour", "minute", "second", "duration", "elapsed"}
    if tok & _TIME_TOKENS and not tok & not_instants:
        seconds = int(_timestamp(slot, rng).timestamp())
        return seconds * 1000 if kind == "long" else seconds
    if kind == "long" and tok & {"phone", "mobile", "tel", "telephone", "cellphone"}:
        return int(_mobile(rng))
    if slot.snake == "id" or slot.snake.endswith("_id"):
        return rng.randint(10**15, 10**16 - 1) if kind == "long" else rng.randint(1, 9_999_999)
    lo, hi, _ = _numeric_range(slot, kind)
    low, high = _INT_LIMITS[kind]
    return max(low, min(high, rng.randint(int(lo), int(hi))))


def _floating(slot: _Slot, rng: Random, kind: str) -> float:
    role = _person_role(slot.snake)
    if role is not None and role[0] == "age":
        return float(age_at(_subject(slot, rng).birth, slot.anchor))
    lo, hi, places = _numeric_range(slot, kind)
    value = round(rng.uniform(lo, hi), places if places else 1)
    return _float32(value) if kind == "float" else value


def _decimal(slot: _Slot, rng: Random, t: Schema) -> decimal.Decimal:
    precision = int(t["precision"])
    scale = int(t.get("scale", 0))
    lo, hi, _ = _numeric_range(slot, "decimal")
    unit = 10**scale
    max_units = 10**precision - 1
    if t.get("type") == "fixed":
        max_units = min(max_units, 2 ** (8 * int(t["size"]) - 1) - 1)
    hi_units = min(int(hi * unit), max_units)
    lo_units = min(int(lo * unit), hi_units // 2)
    units = rng.randint(lo_units, hi_units)
    if scale >= 2 and slot.tokens & _MONEY and rng.random() < 0.5 and units >= unit:
        units -= units % unit  # whole yuan, as amounts often are
    return decimal.Decimal(units).scaleb(-scale)


def _bytes(slot: _Slot, rng: Random) -> bytes:
    tok = slot.tokens
    if tok & _PHOTO:
        return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.randbytes(rng.randint(16, 48))
    if tok & _ATTACHMENT:
        return b"%PDF-1.7\n" + rng.randbytes(rng.randint(16, 48))
    if tok & {"hash", "digest", "checksum", "sha256"}:
        return rng.randbytes(32)
    if tok & {"signature", "sign"}:
        return rng.randbytes(64)
    return rng.randbytes(rng.randint(8, 32))


# -- strings ---------------------------------------------------------------------


def _person_name(rng: Random, male: bool | None, part: str = "name") -> str:
    surname = rng.choices(_SURNAME_LIST, cum_weights=_SURNAME_CUM)[0]
    if male is None:
        male = rng.random() < 0.5
    pool = _GIVEN_MALE if male else _GIVEN_FEMALE
    given = "".join(rng.choice(pool) for _ in range(1 if rng.random() < 0.35 else 2))
    if part == "surname":
        return surname
    if part == "given":
        return given
    return surname + given


def _id_number(rng: Random, person: _Person, region: _Region) -> str:
    code = region.code if rng.random() < 0.7 else rng.choice(_REGIONS).code
    last = rng.choice("13579" if person.male else "02468")
    body = f"{code}{person.birth:%Y%m%d}{rng.randrange(1, 100):02d}{last}"
    return body + id_check_digit(body)


def _credit_code(rng: Random, region: _Region) -> str:
    # 91 company, 92 individual business, 93 farmers' cooperative (GB 32100 table 1)
    kind = rng.choices(("91", "92", "93"), cum_weights=(90, 97, 100))[0]
    if rng.random() < 0.6:
        org = "MA" + "".join(
            rng.choice(_CREDIT_CHARS[:10] + "ABCDEFGHJKLMNPQRTUWXY") for _ in range(6)
        )
    else:
        org = _digits(rng, 8)
    body = f"{kind}{region.code}{org}{_org_code_check(org)}"
    return body + credit_code_check(body)


def _mobile(rng: Random) -> str:
    return rng.choice(_MOBILE_PREFIXES) + _digits(rng, 8)


def _address(rng: Random, region: _Region) -> str:
    street = rng.choice(_STREETS)
    addr = f"{region.full}{street}{rng.randint(1, 999)}号"
    if rng.random() < 0.6:
        room = rng.randint(1, 30) * 100 + rng.randint(1, 4)
        addr += f"{rng.randint(1, 30)}幢{rng.randint(1, 4)}单元{room}室"
    return addr


def _org_name(rng: Random, tokens: frozenset[str], hints: frozenset[str], region: _Region) -> str:
    if tokens & _HOSPITAL:
        if region.province == "浙江省" and rng.random() < 0.3:
            return rng.choice(_HOSPITALS_ZJ)
        if rng.random() < 0.5:
            return f"{region.local}人民医院"
        return f"{region.city}{rng.choice(_HOSPITAL_KINDS)}"
    if tokens & _SCHOOL:
        kind = rng.choice(("第{}中学", "第{}小学", "实验小学", "外国语学校"))
        return f"{region.local}{kind.format('一二三四五六七八九'[rng.randrange(9)])}"
    if "bank" in tokens:
        return f"{rng.choice(_BANKS)}{region.city_short}{region.district_short}支行"
    if tokens & _GOV:
        found = [agency for words, agency in _AGENCIES if (tokens | hints) & words]
        agency = found[0] if found else rng.choice(_AGENCY_DEFAULT)
        if agency == "公安分局":
            return f"{region.city}公安局{region.district_short}分局"
        if agency == "税务局":
            return f"国家税务总局{region.local}税务局"
        return f"{region.local}{agency}"
    suffix = rng.choice(_COMPANY_SUFFIXES)
    return f"{region.city_short}{rng.choice(_BRANDS)}{rng.choice(_INDUSTRIES)}{suffix}"


def _is_org_field(slot: _Slot) -> bool:
    tok = slot.tokens
    parts = slot.snake.split("_")
    if parts[-1] in _ORG_FIELD_ENDINGS or _plural_forms(parts[-1]) & _ORG:
        if tok & _ORG:
            return not tok & {"code", "id", "no", "number", "phone", "address", "type"}
        if parts[-1] == "by" and tok & _GOV:
            return True
        if slot.snake == "name" and slot.hints & _ORG:
            return True
    return False


def _from_example(rng: Random, example: str, slot: _Slot) -> str:
    """A value shaped like the doc's example: its region and year kept plausible."""

    def digits(m: re.Match[str]) -> str:
        run = m.group(0)
        if len(run) == 6 and any(r.code == run for r in _REGIONS):
            return slot.region.code
        if len(run) == 4 and run[:2] in ("19", "20"):
            return str(slot.anchor.year)
        return _digits(rng, len(run))

    return re.sub(r"\d+", digits, example)


def _serial_no(rng: Random, slot: _Slot) -> str:
    if slot.example:
        return _from_example(rng, slot.example, slot)
    generic = {"no", "number", "num", "code", "serial", "sn", "the", "of"}
    words = [p for p in slot.snake.split("_") if p and p not in generic]
    letter = (words[0][0] if words and words[0][0].isalpha() else "N").upper()
    return f"{letter}{slot.region.code[:2]}{_digits(rng, 7)}"


def _string(slot: _Slot, rng: Random) -> str:
    tok = slot.tokens
    snake = slot.snake
    role = _person_role(snake)
    if role is not None and role[0] == "id":
        return _id_number(rng, _subject(slot, rng), slot.region)
    if role is not None and role[0] == "birth":
        birth = _subject(slot, rng).birth
        return str(birth.year) if "year" in tok else birth.isoformat()
    if role is not None and role[0] == "age":
        return str(age_at(_subject(slot, rng).birth, slot.anchor))
    if "grade" in tok and slot.subject is not None and slot.subject.pupil:
        return grade_name(grade_at(slot.subject.birth, slot.anchor))
    if role is not None and role[0] == "gender":
        male = _subject(slot, rng).male
        if tok & {"code"}:
            return "1" if male else "2"
        return "男" if male else "女"
    if tok & {"credit", "uscc", "tyshxydm"} and not tok & {"type", "status"}:
        return _credit_code(rng, slot.region)
    if tok & {"org", "organization", "organisation"} and "code" in tok:
        body = _digits(rng, 8)
        return f"{body}-{_org_code_check(body)}"
    if tok & {"phone", "mobile", "tel", "telephone", "cellphone"}:
        return _mobile(rng)
    if "fax" in tok:
        return f"0571-{rng.randint(81000000, 89999999)}"
    if tok & {"email", "mail"}:
        local = rng.choice(_PINYIN_FAMILY) + rng.choice(_PINYIN_GIVEN) + _digits(rng, 3)
        return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"
    if tok & {"postcode", "postal", "zip", "zipcode"}:
        return rng.choice(_POSTCODES)
    if "code" in tok and tok & {
        "region",
        "division",
        "area",
        "district",
        "county",
        "xzqh",
        "adcode",
        "admin",
    }:
        return slot.region.code
    if "code" in tok and "city" in tok:
        return slot.region.code[:4] + "00"
    if "code" in tok and "province" in tok:
        return slot.region.code[:2] + "0000"
    if tok & {"address", "addr", "residence", "domicile", "location"}:
        return _address(rng, slot.region)
    if tok & {"native", "hometown", "birthplace", "origin"} or "birth_place" in snake:
        return f"{slot.region.province}{'' if slot.region.city == slot.region.province else slot.region.city}"
    if _is_org_field(slot):
        kind = tok | slot.hints if snake == "name" else tok
        return _org_name(rng, kind, slot.hints, slot.region)
    if role is not None:  # name, surname, given
        person = slot.person
        return _person_name(rng, person.male if person else None, role[0])
    if "province" in tok:
        return slot.region.province
    if "city" in tok:
        return slot.region.city
    if tok & {"district", "county"}:
        return slot.region.district
    if tok & {"url", "website", "homepage", "link"}:
        return f"https://www.example.gov.cn/art/{slot.anchor.year}/{rng.randint(10000, 99999)}.html"
    if tok & {"ip"}:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if "plate" in tok:
        prefix = _PLATE_PREFIX.get(slot.region.province, "浙")
        tail = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(5))
        return f"{prefix}{rng.choice('AAABC')}{tail}"
    if tok & {"ethnic", "ethnicity", "minzu"} or snake == "nation":
        return "汉族" if rng.random() < 0.9 else rng.choice(_ETHNIC_MINORITIES)
    if tok & {"nationality", "country", "citizenship"}:
        return "中国"
    if tok & {"occupation", "profession", "job"}:
        return rng.choice(_OCCUPATIONS)
    if tok & {"education", "degree"}:
        return rng.choice(_EDUCATION)
    if "marital" in tok:
        return rng.choice(_MARITAL)
    if "blood" in tok:
        return rng.choice(("A", "B", "O", "AB"))
    if tok & {"relation", "relationship"}:
        return rng.choice(_RELATIONS)
    if tok & {"enterprise", "company", "business", "entity"} and tok & {"type", "kind"}:
        return rng.choice(_ENTERPRISE_TYPES)
    if "scope" in tok:
        return "；".join(rng.sample(_SCOPE_ITEMS, rng.randint(2, 4)))
    if tok & {"icd", "icd10"}:
        return _DISEASES[_shared(slot, "disease", len(_DISEASES))][1]
    if tok & {"cause", "disease", "diagnosis"}:
        return _DISEASES[_shared(slot, "disease", len(_DISEASES))][0]
    if tok & _STATUS:
        return rng.choice(_STATUS_WORDS)
    if tok & {"remark", "note", "description", "comment", "memo", "reason", "opinion"}:
        return rng.choice(_REMARKS)
    if tok & {"title", "subject"}:
        return f"关于{rng.choice(_TITLE_TOPICS)}的{rng.choice(_TITLE_KINDS)}"
    if "account" in tok or ("card" in tok and "bank" in tok):
        body = "62" + _digits(rng, 16)
        return body + _luhn_digit(body)
    if "uuid" in tok or "guid" in tok or snake == "id" or snake.endswith("_id"):
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if tok & {"hash", "digest", "checksum", "sha256"}:
        return rng.randbytes(32).hex()
    if "md5" in tok:
        return rng.randbytes(16).hex()
    if "date" in tok:
        return _date(slot, rng).isoformat()
    if tok & _TIME_TOKENS:
        return str(jsoncodec.to_jsonable(_timestamp(slot, rng)))
    if tok & {"no", "number", "num", "serial", "sn", "licence", "license", "certificate", "permit"}:
        return _serial_no(rng, slot)
    if "code" in tok:
        if slot.example:
            return _from_example(rng, slot.example, slot)
        return f"{rng.choice(string.ascii_uppercase)}{_digits(rng, 6)}"
    if tok & _USER:
        return rng.choice(_PINYIN_FAMILY) + rng.choice(_PINYIN_GIVEN) + _digits(rng, 2)
    if slot.example:
        return _from_example(rng, slot.example, slot)
    return f"{rng.choice(_WORDS)}{rng.choice(_WORDS)}{_digits(rng, 4)}"


def _shared(slot: _Slot, what: str, n: int) -> int:
    """A choice among ``n`` shared by the fields of one record (a cause of death, its ICD code)."""
    text = f"{slot.stream}\x1f{slot.record_path}#{what}\x1f{slot.index}"
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def generate(schema: Schema, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` sample records of ``schema`` in fastavro's Python form.

    The same ``(schema, count, seed)`` always gives the same records, and the
    first records of a larger ``count`` equal those of a smaller one. Raises
    :class:`~exchange.errors.SchemaError` if the schema is not a valid record schema.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    gen = _Generator(schema, seed)
    return [gen.record(i) for i in range(count)]


def iter_json_lines(schema: Schema, count: int, seed: int = 0) -> Iterator[str]:
    """The records of :func:`generate` as JSON Lines (no newline), made one at a time."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    gen = _Generator(schema, seed)
    for i in range(count):
        yield jsoncodec.dumps(gen.record(i))
