"""A labelled Chinese test corpus: valid identifiers, names and addresses in customer-service
sentences, plus look-alikes that must not be flagged. Deterministic for a given seed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from app.pii.checksums import (
    ORG_CODE_WEIGHTS,
    USCC_ALPHABET,
    USCC_WEIGHTS,
    luhn_valid,
    resident_id_check_char,
)


@dataclass
class Sample:
    text: str
    spans: list[tuple[str, int, int]] = field(default_factory=list)  # (type, start, end)


SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡")
COMPOUND = ["欧阳", "司马", "上官", "诸葛", "慕容"]
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英霞平刚桂兰志红华建国玉梅俊浩宇欣怡子涵晨")
REGIONS = ["110105", "110108", "310104", "310115", "440305", "440106", "320106", "330106",
           "510107", "420106", "610113", "370202", "350203", "500103", "120101"]
CITIES = [("广东省", "深圳市", ["南山区", "福田区", "宝安区"]),
          ("广东省", "广州市", ["天河区", "越秀区", "海珠区"]),
          ("浙江省", "杭州市", ["西湖区", "滨江区", "余杭区"]),
          ("江苏省", "南京市", ["鼓楼区", "玄武区", "江宁区"]),
          ("四川省", "成都市", ["武侯区", "锦江区", "高新区"]),
          ("", "北京市", ["朝阳区", "海淀区", "东城区"]),
          ("", "上海市", ["浦东新区", "徐汇区", "静安区"])]
ROADS = ["科技园路", "中山路", "人民路", "建设大道", "解放路", "文三路", "南京东路", "长安街",
         "天府大道", "学院路"]
ESTATES = ["阳光花园", "万科城", "碧桂园", "世纪新村", "华润大厦"]
PROVINCE_CHARS = "京津沪渝冀豫云辽黑湘皖鲁苏浙粤川"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DOMAINS = ["qq.com", "163.com", "126.com", "sina.com", "example.cn", "company.com.cn"]
PINYIN = ["zhangwei", "lina", "wangfang", "liuyang", "chenjie", "yangmin", "huanglei"]


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def name(self) -> str:
        surname = self.rng.choice(COMPOUND) if self.rng.random() < 0.1 else \
            self.rng.choice(SURNAMES)
        return surname + "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2))))

    def resident_id(self) -> str:
        born = date(1950, 1, 1) + timedelta(days=self.rng.randrange(365 * 60))
        first17 = f"{self.rng.choice(REGIONS)}{born:%Y%m%d}{self.rng.randrange(1000):03d}"
        return first17 + resident_id_check_char(first17)

    def wrong_check_id(self) -> str:
        valid = self.resident_id()
        wrong = self.rng.choice([c for c in "0123456789X" if c != valid[-1]])
        return valid[:-1] + wrong

    def old_resident_id(self) -> str:
        born = date(1940, 1, 1) + timedelta(days=self.rng.randrange(365 * 59))
        return f"{self.rng.choice(REGIONS)}{born:%y%m%d}{self.rng.randrange(1000):03d}"

    def phone(self) -> str:
        digits = f"1{self.rng.choice('3456789')}{self.rng.randrange(10 ** 9):09d}"
        style = self.rng.random()
        if style < 0.6:
            return digits
        if style < 0.8:
            return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
        return f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}"

    def bank_card(self) -> str:
        while True:
            body = "62" + "".join(str(self.rng.randrange(10))
                                  for _ in range(self.rng.choice((13, 16))))
            for check in "0123456789":
                if luhn_valid(body + check):
                    return body + check

    def uscc(self) -> str:
        values = [self.rng.randrange(10) for _ in range(8)]
        remainder = 11 - sum(v * w for v, w in zip(values, ORG_CODE_WEIGHTS, strict=True)) % 11
        org = "".join(map(str, values)) + {10: "X", 11: "0"}.get(remainder, str(remainder))
        first17 = "91" + self.rng.choice(["110108", "310115", "440300", "350200"]) + org
        total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS,
                                                                strict=True))
        return first17 + USCC_ALPHABET[(31 - total % 31) % 31]

    def address(self) -> str:
        province, city, districts = self.rng.choice(CITIES)
        parts = [province, city, self.rng.choice(districts), self.rng.choice(ROADS),
                 f"{self.rng.randrange(1, 999)}号"]
        if self.rng.random() < 0.5:
            parts += [self.rng.choice(ESTATES), f"{self.rng.randrange(1, 30)}栋",
                      f"{self.rng.randrange(1, 6)}单元", f"{self.rng.randrange(101, 2999)}室"]
        return "".join(parts)

    def email(self) -> str:
        return f"{self.rng.choice(PINYIN)}{self.rng.randrange(100, 9999)}@" \
               f"{self.rng.choice(DOMAINS)}"

    def passport(self) -> str:
        return f"{self.rng.choice('EG')}{self.rng.randrange(10 ** 8):08d}"

    def permit(self) -> str:
        return f"{self.rng.choice('HM')}{self.rng.randrange(10 ** 8):08d}"

    def plate(self) -> str:
        tail = "".join(self.rng.choice("0123456789ABCDEFGHJKLMN") for _ in range(5))
        return f"{self.rng.choice(PROVINCE_CHARS)}{self.rng.choice(PLATE_LETTERS)}{tail}"


# (template, {slot: entity type or None for unscored}) -- slots are filled by Generator methods
TEMPLATES: list[tuple[str, dict[str, str | None]]] = [
    ("客户{name}的身份证号码是{resident_id}，请核实。", {"name": "PERSON",
                                                    "resident_id": "CN_RESIDENT_ID"}),
    ("联系人：{name}，手机：{phone}", {"name": "PERSON", "phone": "PHONE_NUMBER"}),
    ("{name}先生您好，您的银行卡{bank_card}已绑定成功。", {"name": "PERSON",
                                                       "bank_card": "CN_BANK_CARD"}),
    ("收货地址：{address}，收件人{name}，电话{phone}", {"address": "LOCATION", "name": "PERSON",
                                                     "phone": "PHONE_NUMBER"}),
    ("请将发票寄到{address}。", {"address": "LOCATION"}),
    ("公司统一社会信用代码：{uscc}", {"uscc": "CN_USCC"}),
    ("护照号码{passport}，有效期至2030年。", {"passport": "CN_PASSPORT"}),
    ("港澳通行证号码：{permit}", {"permit": "CN_HK_MACAU_PERMIT"}),
    ("车牌号为{plate}的车辆在小区门口违停。", {"plate": "CN_LICENSE_PLATE"}),
    ("如有疑问请发邮件至{email}，我们会尽快回复。", {"email": "EMAIL_ADDRESS"}),
    ("我叫{name}，住在{address}，手机号{phone}。", {"name": "PERSON", "address": "LOCATION",
                                              "phone": "PHONE_NUMBER"}),
    ("持卡人{name}，卡号{bank_card}，预留手机{phone}", {"name": "PERSON",
                                                  "bank_card": "CN_BANK_CARD",
                                                  "phone": "PHONE_NUMBER"}),
    ("患者{name}，身份证{resident_id}，联系电话{phone}。", {"name": "PERSON",
                                                       "resident_id": "CN_RESIDENT_ID",
                                                       "phone": "PHONE_NUMBER"}),
    ("老身份证号{old_resident_id}已停用，请更换。", {"old_resident_id": "CN_RESIDENT_ID"}),
    ("{name}女士反映，快递一直没有送到{address}。", {"name": "PERSON", "address": "LOCATION"}),
    ("请{name}同学于周五前提交材料，邮箱{email}。", {"name": "PERSON", "email": "EMAIL_ADDRESS"}),
]
NEGATIVES = [
    "订单号{wrong_check_id}已发货，请注意查收。",
    "您的快递单号为SF{tracking}，预计明天送达。",
    "本次订单金额为{amount}元，已支付成功。",
    "员工工号{staff}，部门：技术部。",
    "客服热线400-800-8888，工作时间9:00-18:00。",
    "他性格耿直，大家都很喜欢他。",
    "今天下午很安静，适合看书。",
    "会议室在三楼，请准时参加。",
]


def generate(count: int, seed: int) -> list[Sample]:
    gen = Generator(seed)
    samples = []
    for index in range(count):
        if index % 5 == 4:
            template = gen.rng.choice(NEGATIVES)
            text = template.format(
                wrong_check_id=gen.wrong_check_id(),
                tracking=f"{gen.rng.randrange(10 ** 13):013d}",
                amount=f"{gen.rng.randrange(100, 99999):,}.{gen.rng.randrange(100):02d}",
                staff=f"{gen.rng.choice('AB')}{gen.rng.randrange(10 ** 5):05d}")
            samples.append(Sample(text))
            continue
        template, slots = gen.rng.choice(TEMPLATES)
        samples.append(_fill(template, slots, gen))
    return samples


def _fill(template: str, slots: dict[str, str | None], gen: Generator) -> Sample:
    text, spans, cursor = "", [], 0
    while True:
        open_at = template.find("{", cursor)
        if open_at < 0:
            return Sample(text + template[cursor:], spans)
        close_at = template.index("}", open_at)
        text += template[cursor:open_at]
        slot = template[open_at + 1:close_at]
        value = getattr(gen, slot)()
        if slots.get(slot):
            spans.append((str(slots[slot]), len(text), len(text) + len(value)))
        text += value
        cursor = close_at + 1
