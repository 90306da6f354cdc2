#!/usr/bin/env python3
"""Writes the sample corpus in samples/handbook: the handbook of a fictional company,
青禾科技 (Qinghe Technology), in 简体 and 繁體, across md, html, docx, pdf, xlsx and a
GBK-encoded txt. Every word was written for luodi; the files are committed, so this script
only runs when the samples change:

    python3 -m venv /tmp/sv && /tmp/sv/bin/pip install fpdf2 openpyxl python-docx
    apt-get install fonts-wqy-microhei      # a CJK font to embed in the PDF
    /tmp/sv/bin/python scripts/make_samples.py
"""
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples", "handbook")

LEAVE_MD = """# 青禾科技员工手册：请假制度

本制度适用于青禾科技有限公司总部及各分公司的全体正式员工。

## 年假

员工入职满一年后享有带薪年假。工作满1年不满10年的，年假5天；满10年不满20年的，年假10天；满20年的，年假15天。
年假须提前三个工作日在人事系统（HR-Link）中提交申请，经部门经理审批后生效。当年未休的年假可顺延至次年3月31日，逾期作废。

## 病假

员工因病需要休假的，应于当天上午10点前告知直属主管，并在返岗后两个工作日内补交医院出具的病假证明。
连续病假超过3天的，须提供二级及以上医院的诊断证明。

## 事假

事假为无薪假，每次不超过3天，全年累计不超过10天。

## 假期一览

| 假期类型 | 天数 | 是否带薪 | 审批人 |
| --- | --- | --- | --- |
| 年假 | 5至15天 | 是 | 部门经理 |
| 病假 | 按证明 | 前5天全薪 | 直属主管 |
| 婚假 | 3天 | 是 | 部门经理 |
| 产假 | 158天 | 是 | 人力资源部 |
| 事假 | 不超过3天/次 | 否 | 部门经理 |
"""

REMOTE_MD = """# Remote Work Policy

Qinghe Technology staff may work remotely up to two days per week with their manager's approval.

## Equipment

The company provides a laptop and a hardware security key. Connect through the company VPN (Qinghe Connect) before opening any internal system.

## Expenses

Home internet costs are reimbursed up to 100 yuan per month. Submit the invoice in the expense system before the 5th of the following month.
"""

EXPENSE_HTML = """<!DOCTYPE html>
<html lang="zh-Hant"><head><meta charset="utf-8"><title>青禾科技差旅費報銷辦法</title>
<style>body { font-family: sans-serif; }</style><script>var tracker = 1;</script></head>
<body>
<nav class="top-nav"><a href="/">首頁</a> | <a href="/hr">人事</a> | <a href="/it">資訊</a></nav>
<header id="site-header">青禾科技內部網站</header>
<main>
<h1>差旅費報銷辦法</h1>
<p>本辦法規定員工因公出差發生的交通、住宿及餐飲費用的報銷標準與流程，適用於台北分公司及總部派駐人員。</p>
<h2>住宿標準</h2>
<p>出差住宿費按城市等級實報實銷，超出標準部分由員工自行負擔。</p>
<table>
<tr><th>城市等級</th><th>住宿上限（每晚）</th><th>餐飲補貼（每日）</th></tr>
<tr><td>一線城市（北京、上海、深圳）</td><td>600元</td><td>150元</td></tr>
<tr><td>二線城市（杭州、南京、成都）</td><td>450元</td><td>120元</td></tr>
<tr><td>其他城市</td><td>350元</td><td>100元</td></tr>
</table>
<h2>報銷流程</h2>
<p>出差結束後十個工作日內，在費用系統中提交報銷單，並上傳發票及行程單。單筆金額超過5,000元的，須由分管副總經理加簽。</p>
<p>機票須選擇經濟艙；高鐵須選擇二等座。因緊急公務改簽產生的費用可以報銷，須附說明。</p>
</main>
<footer class="site-footer">© 青禾科技 版權所有 | 聯絡我們</footer>
</body></html>
"""

NOTICE_GBK = """关于春节放假安排的通知

各部门、各分公司：

根据国家规定，结合公司实际，2025年春节放假时间为1月28日至2月4日，共8天。1月26日（星期日）、2月8日（星期六）正常上班。

放假期间，IT服务台安排值班，值班电话：0571-8888-6000。各分公司须在1月24日前完成机房巡检，并将值班表报行政部备案。

请各部门提前做好工作安排，确保节日期间安全。

青禾科技有限公司行政部
2025年1月10日
"""

IT_DOCX = [
    ("h1", "IT服务台指南"),
    ("p", "IT服务台负责全公司的电脑、账号、网络与办公软件支持。服务时间为工作日8:30至18:00。"),
    ("h2", "忘记密码"),
    ("p", "统一账号密码遗忘时，请访问自助服务门户 it.qinghe.example，使用手机验证码重置。连续输错5次后账号锁定30分钟。"),
    ("h2", "VPN远程接入"),
    ("p", "在外办公须通过青禾VPN（Qinghe Connect）接入内网。首次使用前在自助门户下载客户端，并绑定硬件安全密钥。"),
    ("p", "VPN连接失败时，请先确认系统时间准确，再重启客户端；仍无法连接的，请拨打服务台电话。"),
    ("h2", "联系方式"),
    ("table", [["地区", "电话", "邮箱"],
               ["总部（杭州）", "0571-8888-6000", "it@qinghe.example"],
               ["上海分公司", "021-6666-1200", "it-sh@qinghe.example"],
               ["台北分公司", "02-2700-3300", "it-tp@qinghe.example"]]),
]

BRANCHES = [
    ["分公司", "简称", "地址", "负责人", "电话"],
    ["杭州分公司", "杭分", "杭州市西湖区文三路100号", "陈明", "0571-8888-6001"],
    ["上海分公司", "沪分", "上海市浦东新区张江路200号", "李华", "021-6666-1201"],
    ["南京分公司", "宁分", "南京市鼓楼区中山路300号", "王芳", "025-5555-1301"],
    ["台北分公司", "北分", "台北市信义区松仁路58号", "林志豪", "02-2700-3301"],
    ["成都分公司", "蓉分", "成都市高新区天府大道400号", "张伟", "028-8765-1401"],
]

SECURITY_PDF = [
    ["資訊安全須知",
     "為保護公司與客戶資料，全體員工應遵守以下資訊安全規定。",
     "一、密碼須至少12個字元，包含大小寫字母、數字與符號，每90天更換一次，不得與前5次密碼相同。",
     "二、離開座位時須鎖定螢幕；筆記型電腦不得存放於無人看管的車輛內。"],
    ["三、客戶個人資料僅得存放於公司核准的系統，不得以私人郵箱或通訊軟體傳送。",
     "四、發現可疑郵件或疑似資料外洩時，應於1小時內通報資訊服務台（分機6000）。",
     "違反本須知者，依情節輕重予以警告、記過或解除勞動契約。"],
]


def main():
    os.makedirs(OUT, exist_ok=True)
    w = lambda name, text, enc="utf-8": open(os.path.join(OUT, name), "w", encoding=enc, newline="\n").write(text)
    w("员工手册-请假制度.md", LEAVE_MD)
    w("remote-work-policy.md", REMOTE_MD)
    w("差旅費報銷辦法.html", EXPENSE_HTML)
    w("春节放假通知-gbk.txt", NOTICE_GBK, "gbk")

    import docx
    d = docx.Document()
    d.core_properties.title = "IT服务台指南"
    for kind, val in IT_DOCX:
        if kind == "h1":
            d.add_heading(val, level=1)
        elif kind == "h2":
            d.add_heading(val, level=2)
        elif kind == "p":
            d.add_paragraph(val)
        else:
            t = d.add_table(rows=len(val), cols=len(val[0]))
            for i, row in enumerate(val):
                for j, cell in enumerate(row):
                    t.cell(i, j).text = cell
    d.save(os.path.join(OUT, "IT服务台指南.docx"))

    import openpyxl
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "分公司"
    for row in BRANCHES:
        ws.append(row)
    wb.properties.creator = "luodi samples"
    wb.save(os.path.join(OUT, "分公司通讯录.xlsx"))

    from fpdf import FPDF
    pdf = FPDF()
    pdf.add_font("wqy", "", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", collection_font_number=0)
    pdf.set_font("wqy", size=12)
    pdf.set_title("資訊安全須知")
    for page in SECURITY_PDF:
        pdf.add_page()
        for para in page:
            pdf.multi_cell(0, 8, para)
            pdf.ln(4)
    pdf.output(os.path.join(OUT, "資訊安全須知.pdf"))
    print("wrote", sorted(os.listdir(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
